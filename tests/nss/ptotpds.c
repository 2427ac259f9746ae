/*
 * A directory-service stand-in for the system tests (tests/tests/directory_services.rs):
 * an NSS module, libnss_ptotpds.so.2, loaded after `files` through a bind-mounted
 * nsswitch.conf in a private mount namespace.
 *
 * passwd: serves aliases of one account (as SSSD/AD does: `ALICE`, `AD\alice`,
 *         `alice@AD`), each resolving to the account's canonical name, uid, gid and
 *         home directory; or fails.
 * group:  serves one group whose only member is that account; or fails in the ways
 *         real sources fail.
 *
 * Behaviour comes from STATE_DIR/control (read on every call, "key value" lines), and
 * every call is appended to STATE_DIR/calls so a test can count lookups. STATE_DIR is
 * compiled in (-DSTATE_DIR=...): a module must not read its configuration from the
 * environment of the process it is loaded into.
 *
 * Modes ("passwd" and "group" keys):
 *   ok        answer from the control file
 *   unavail   NSS_STATUS_UNAVAIL, errno ENOENT (glibc's documented pairing)
 *   tryagain  NSS_STATUS_TRYAGAIN, errno EAGAIN (a server that does not answer)
 *   silent    NSS_STATUS_UNAVAIL without touching errno (a careless source)
 * passwd only:
 *   once      ok for the first getpwnam the call log holds, unavail for every later
 *             one (a directory that goes away in the middle of a login)
 * pwuid (getpwuid; default ok, which answers "not found": `files` holds the account):
 *   unavail, tryagain, silent as above (listed before `files` with a `[TRYAGAIN=return]`
 *             action, the process owner's lookup fails)
 * group only:
 *   nogid     initgroups reports the group id, but the group cannot be resolved
 *   initdown  the group resolves (without members, like SSSD's ignore_group_members),
 *             initgroups fails with NSS_STATUS_UNAVAIL, errno ECONNREFUSED
 *
 * Two groups with one name (two directory groups with one cn): "grfirst <gid>" makes
 * getgrnam answer with a group of that gid and no member, the first of the two, while
 * initgroups and getgrgid still give the group of "grgid" by that name. "grgidmode"
 * (a mode as above) is what getgrgid alone answers; "nameless" finds the group but
 * leaves its gr_name NULL (a broken module).
 *
 * "grgidsleep <ms>": getgrgid answers only after that long (a slow directory);
 * "initsleep <ms>": initgroups likewise; "grnamsleep <ms>": getgrnam likewise.
 *
 * Compiled with -DNO_GETGRGID, the module has no getgrgid_r at all (a source that
 * resolves group names but cannot name a gid).
 */
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#ifndef STATE_DIR
#error "compile with -DSTATE_DIR=\"...\""
#endif

#define MAX_ALIASES 8
#define FIELD 512

struct control {
    char canonical[FIELD];
    unsigned long uid, gid;
    char dir[FIELD];
    char aliases[MAX_ALIASES][FIELD];
    int naliases;
    char passwd[32];
    char group[32];
    char pwuid[32];
    char grname[FIELD];
    unsigned long grgid;
    int grmember;
    unsigned long grfirst;
    char grgidmode[32];
    unsigned long grgidsleep;
    unsigned long initsleep;
    unsigned long grnamsleep;
};

static void load(struct control *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->passwd, "ok");
    strcpy(c->group, "ok");
    strcpy(c->pwuid, "ok");
    strcpy(c->grgidmode, "ok");
    FILE *f = fopen(STATE_DIR "/control", "re");
    if (f == NULL)
        return;
    char line[FIELD + 32];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *value = strchr(line, ' ');
        if (value == NULL)
            continue;
        *value++ = '\0';
        if (strcmp(line, "canonical") == 0)
            snprintf(c->canonical, FIELD, "%s", value);
        else if (strcmp(line, "uid") == 0)
            c->uid = strtoul(value, NULL, 10);
        else if (strcmp(line, "gid") == 0)
            c->gid = strtoul(value, NULL, 10);
        else if (strcmp(line, "dir") == 0)
            snprintf(c->dir, FIELD, "%s", value);
        else if (strcmp(line, "alias") == 0 && c->naliases < MAX_ALIASES)
            snprintf(c->aliases[c->naliases++], FIELD, "%s", value);
        else if (strcmp(line, "passwd") == 0)
            snprintf(c->passwd, sizeof c->passwd, "%s", value);
        else if (strcmp(line, "group") == 0)
            snprintf(c->group, sizeof c->group, "%s", value);
        else if (strcmp(line, "pwuid") == 0)
            snprintf(c->pwuid, sizeof c->pwuid, "%s", value);
        else if (strcmp(line, "grname") == 0)
            snprintf(c->grname, FIELD, "%s", value);
        else if (strcmp(line, "grgid") == 0)
            c->grgid = strtoul(value, NULL, 10);
        else if (strcmp(line, "grfirst") == 0)
            c->grfirst = strtoul(value, NULL, 10);
        else if (strcmp(line, "grgidmode") == 0)
            snprintf(c->grgidmode, sizeof c->grgidmode, "%s", value);
        else if (strcmp(line, "grgidsleep") == 0)
            c->grgidsleep = strtoul(value, NULL, 10);
        else if (strcmp(line, "initsleep") == 0)
            c->initsleep = strtoul(value, NULL, 10);
        else if (strcmp(line, "grnamsleep") == 0)
            c->grnamsleep = strtoul(value, NULL, 10);
        else if (strcmp(line, "grmember") == 0)
            c->grmember = strcmp(value, "1") == 0;
    }
    fclose(f);
}

/* How many calls of `call` the log holds. */
static int count_calls(const char *call)
{
    FILE *f = fopen(STATE_DIR "/calls", "re");
    if (f == NULL)
        return 0;
    char line[FIELD + 32];
    size_t n = strlen(call);
    int count = 0;
    while (fgets(line, sizeof line, f) != NULL)
        count += strncmp(line, call, n) == 0 && line[n] == ' ';
    fclose(f);
    return count;
}

static void note(const char *call, const char *arg)
{
    FILE *f = fopen(STATE_DIR "/calls", "ae");
    if (f == NULL)
        return;
    fprintf(f, "%s %s\n", call, arg);
    fclose(f);
}

/* Waits `ms` milliseconds (a slow directory). */
static void pause_for(unsigned long ms)
{
    if (ms == 0)
        return;
    struct timespec pause = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
        ;
}

/* The answer for a failure mode, or NSS_STATUS_SUCCESS to go on answering. */
static enum nss_status failure(const char *mode, int *errnop)
{
    if (strcmp(mode, "unavail") == 0) {
        *errnop = ENOENT;
        return NSS_STATUS_UNAVAIL;
    }
    if (strcmp(mode, "tryagain") == 0) {
        *errnop = EAGAIN;
        return NSS_STATUS_TRYAGAIN;
    }
    if (strcmp(mode, "silent") == 0)
        return NSS_STATUS_UNAVAIL;
    return NSS_STATUS_SUCCESS;
}

/* Copies `s` into the caller's buffer; NULL when it does not fit. */
static char *place(const char *s, char **buf, size_t *left)
{
    size_t n = strlen(s) + 1;
    if (n > *left)
        return NULL;
    char *at = *buf;
    memcpy(at, s, n);
    *buf += n;
    *left -= n;
    return at;
}

enum nss_status _nss_ptotpds_getpwnam_r(const char *name, struct passwd *pw, char *buf,
                                        size_t buflen, int *errnop)
{
    int saved = errno;
    struct control c;
    load(&c);
    int earlier = count_calls("getpwnam");
    note("getpwnam", name);
    errno = saved;
    if (strcmp(c.passwd, "once") == 0)
        strcpy(c.passwd, earlier == 0 ? "ok" : "unavail");
    enum nss_status failed = failure(c.passwd, errnop);
    if (failed != NSS_STATUS_SUCCESS)
        return failed;
    int known = 0;
    for (int i = 0; i < c.naliases; i++)
        known |= strcmp(name, c.aliases[i]) == 0;
    if (!known || c.canonical[0] == '\0') {
        *errnop = ENOENT;
        return NSS_STATUS_NOTFOUND;
    }
    size_t left = buflen;
    pw->pw_name = place(c.canonical, &buf, &left);
    pw->pw_passwd = place("x", &buf, &left);
    pw->pw_gecos = place("", &buf, &left);
    pw->pw_dir = place(c.dir, &buf, &left);
    pw->pw_shell = place("/bin/sh", &buf, &left);
    if (!pw->pw_name || !pw->pw_passwd || !pw->pw_gecos || !pw->pw_dir || !pw->pw_shell) {
        *errnop = ERANGE;
        return NSS_STATUS_TRYAGAIN;
    }
    pw->pw_uid = (uid_t)c.uid;
    pw->pw_gid = (gid_t)c.gid;
    return NSS_STATUS_SUCCESS;
}

enum nss_status _nss_ptotpds_getpwuid_r(uid_t uid, struct passwd *pw, char *buf,
                                        size_t buflen, int *errnop)
{
    (void)pw;
    (void)buf;
    (void)buflen;
    int saved = errno;
    struct control c;
    load(&c);
    char arg[32];
    snprintf(arg, sizeof arg, "%lu", (unsigned long)uid);
    note("getpwuid", arg);
    errno = saved;
    enum nss_status failed = failure(c.pwuid, errnop);
    if (failed != NSS_STATUS_SUCCESS)
        return failed;
    /* `files` holds the account itself; only its aliases live here. */
    *errnop = ENOENT;
    return NSS_STATUS_NOTFOUND;
}

static enum nss_status fill_group(const struct control *c, struct group *gr, char *buf,
                                  size_t buflen, int *errnop)
{
    size_t left = buflen;
    /* gr_mem first, aligned: the member pointer array and the NULL end. */
    size_t align = (size_t)buf % sizeof(char *);
    if (align != 0) {
        align = sizeof(char *) - align;
        if (align > left)
            goto range;
        buf += align;
        left -= align;
    }
    if (2 * sizeof(char *) > left)
        goto range;
    char **mem = (char **)(void *)buf;
    buf += 2 * sizeof(char *);
    left -= 2 * sizeof(char *);
    int listed = c->grmember && strcmp(c->group, "ok") == 0;
    mem[0] = NULL;
    mem[1] = NULL;
    if (listed) {
        mem[0] = place(c->canonical, &buf, &left);
        if (mem[0] == NULL)
            goto range;
    }
    gr->gr_mem = mem;
    gr->gr_name = place(c->grname, &buf, &left);
    gr->gr_passwd = place("x", &buf, &left);
    if (gr->gr_name == NULL || gr->gr_passwd == NULL)
        goto range;
    gr->gr_gid = (gid_t)c->grgid;
    return NSS_STATUS_SUCCESS;
range:
    *errnop = ERANGE;
    return NSS_STATUS_TRYAGAIN;
}

static enum nss_status group_failure(const struct control *c, int *errnop)
{
    enum nss_status failed = failure(c->group, errnop);
    if (failed != NSS_STATUS_SUCCESS)
        return failed;
    if (strcmp(c->group, "nogid") == 0 || c->grname[0] == '\0') {
        *errnop = ENOENT;
        return NSS_STATUS_NOTFOUND;
    }
    return NSS_STATUS_SUCCESS;
}

enum nss_status _nss_ptotpds_getgrnam_r(const char *name, struct group *gr, char *buf,
                                        size_t buflen, int *errnop)
{
    int saved = errno;
    struct control c;
    load(&c);
    note("getgrnam", name);
    pause_for(c.grnamsleep);
    errno = saved;
    enum nss_status failed = group_failure(&c, errnop);
    if (failed != NSS_STATUS_SUCCESS)
        return failed;
    if (strcmp(name, c.grname) != 0) {
        *errnop = ENOENT;
        return NSS_STATUS_NOTFOUND;
    }
    if (c.grfirst != 0) {
        c.grgid = c.grfirst;
        c.grmember = 0;
    }
    return fill_group(&c, gr, buf, buflen, errnop);
}

#ifndef NO_GETGRGID
enum nss_status _nss_ptotpds_getgrgid_r(gid_t gid, struct group *gr, char *buf,
                                        size_t buflen, int *errnop)
{
    int saved = errno;
    struct control c;
    load(&c);
    char arg[32];
    snprintf(arg, sizeof arg, "%lu", (unsigned long)gid);
    note("getgrgid", arg);
    pause_for(c.grgidsleep);
    errno = saved;
    enum nss_status failed = group_failure(&c, errnop);
    if (failed == NSS_STATUS_SUCCESS)
        failed = failure(c.grgidmode, errnop);
    if (failed != NSS_STATUS_SUCCESS)
        return failed;
    if (c.grfirst != 0 && gid == (gid_t)c.grfirst) {
        c.grgid = c.grfirst;
        c.grmember = 0;
    }
    if (gid != (gid_t)c.grgid) {
        *errnop = ENOENT;
        return NSS_STATUS_NOTFOUND;
    }
    enum nss_status found = fill_group(&c, gr, buf, buflen, errnop);
    if (found == NSS_STATUS_SUCCESS && strcmp(c.grgidmode, "nameless") == 0)
        gr->gr_name = NULL;
    return found;
}
#endif

enum nss_status _nss_ptotpds_initgroups_dyn(const char *user, gid_t group, long *start,
                                            long *size, gid_t **groupsp, long limit,
                                            int *errnop)
{
    (void)group;
    int saved = errno;
    struct control c;
    load(&c);
    note("initgroups", user);
    pause_for(c.initsleep);
    errno = saved;
    enum nss_status failed = failure(c.group, errnop);
    if (failed != NSS_STATUS_SUCCESS)
        return failed;
    if (strcmp(c.group, "initdown") == 0) {
        *errnop = ECONNREFUSED;
        return NSS_STATUS_UNAVAIL;
    }
    if (!c.grmember || strcmp(user, c.canonical) != 0) {
        *errnop = ENOENT;
        return NSS_STATUS_NOTFOUND;
    }
    if (*start == *size) {
        long grown = 2 * *size;
        if (limit > 0 && grown > limit)
            grown = limit;
        if (grown <= *size)
            return NSS_STATUS_SUCCESS;
        gid_t *more = realloc(*groupsp, (size_t)grown * sizeof(gid_t));
        if (more == NULL) {
            *errnop = ENOMEM;
            return NSS_STATUS_TRYAGAIN;
        }
        *groupsp = more;
        *size = grown;
    }
    (*groupsp)[(*start)++] = (gid_t)c.grgid;
    return NSS_STATUS_SUCCESS;
}
