/*
 * An NFS `root_squash` stand-in for the system tests (tests/tests/root_squash.rs): a
 * FUSE passthrough file system, `ptotpsquash BACKING MOUNTPOINT`, that serves BACKING
 * and does every operation with the caller's credentials, except that uid 0 (and gid
 * 0, also in the supplementary groups) is mapped to nobody (65534), as an NFS server
 * exporting with `root_squash` does. This kernel has no NFS, and it is the server-side
 * mapping the module must live with: root on the client is nobody on the server.
 *
 * BACKING is opened before the mount, so BACKING and MOUNTPOINT may be one directory
 * (a user's home mounted over itself): every operation is relative to that descriptor
 * and never goes back through the mount.
 *
 * Permission decisions are the backing file system's own: each operation runs with
 * setfsuid/setfsgid/setgroups set to the (squashed) caller, so fs capabilities are
 * dropped for anyone but root and root is nobody. The mount has no
 * `default_permissions` (the kernel does not check modes itself; the server does, as
 * with NFS) and zero cache timeouts, so every lookup and attribute read reaches this
 * process with its caller's identity instead of being answered from a cache another
 * identity filled. Reads, fsync and close use the descriptor opened as the caller:
 * permission was decided at the open, as on a local file system.
 *
 * Locks (flock, fcntl) are not implemented here: the kernel then keeps them locally, as
 * an NFS client mounted with `local_lock=all` would. With `--nfs4-flock` before the
 * other arguments, flock is served here as an NFSv4 client serves it (emulated with a
 * whole-file lock on the server): an exclusive lock on a descriptor not open for
 * writing fails with EBADF (flock(2)); any other lock is taken on the backing file.
 * `--nfs4-flock-changing` does the same, and stands for a login on another host
 * rewriting the file while a writer works without the lock: after a refused lock, the
 * second regular file opened (the writer's read again before its rename) finds a line
 * appended to it first. There is no lockd, no client-side
 * caching of attributes or access rights, no delegation and no silly-rename.
 *
 * With a third argument, LOG, every operation done as a caller is appended to it as
 * `OP uid=UID PATH RESULT`, UID being the identity the backing file system saw.
 *
 * Single-threaded (`-s`): credentials are set per operation on the one thread (glibc's
 * setgroups applies to every thread anyway). It stays in the foreground and dies with
 * its parent (PR_SET_PDEATHSIG), so it never outlives the test's mount namespace.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <grp.h>
#include <sys/file.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define NOBODY 65534
#define MAX_GROUPS 64

static int backing = -1;
static pid_t parent;
/* The optional third argument: every operation done as a caller, one line each. */
static FILE *oplog;

/* Dies with the parent. The kernel forgets this setting whenever the fsuid changes, so
 * it is set again after every operation (and the parent checked for a death missed
 * in between). SIGKILL, not SIGTERM: libfuse's handler only ends the loop at the next
 * request. Killed, the connection is aborted and the mount goes with its namespace. */
static void die_with_parent(void)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(1);
}

/* FUSE paths start with '/'; the backing descriptor wants them relative. */
static const char *rel(const char *path)
{
    while (*path == '/')
        path++;
    return *path ? path : ".";
}

static int is_root(const char *path)
{
    return strcmp(rel(path), ".") == 0;
}

static gid_t squash_gid(gid_t g)
{
    return g == 0 ? NOBODY : g;
}

/* Takes on the squashed caller's identity; 0 or -errno. */
static int as_caller(void)
{
    struct fuse_context *c = fuse_get_context();
    uid_t uid = c->uid;
    gid_t gid = c->gid;
    gid_t groups[MAX_GROUPS];
    int n = 0;
    if (uid == 0) {
        /* root_squash: nobody, with no groups at all. */
        uid = NOBODY;
        gid = NOBODY;
    } else {
        /* The kernel sends only uid and gid; NFS (AUTH_SYS) sends the group list too. */
        n = fuse_getgroups(MAX_GROUPS, groups);
        if (n < 0)
            n = 0;
        if (n > MAX_GROUPS)
            n = MAX_GROUPS;
        for (int i = 0; i < n; i++)
            groups[i] = squash_gid(groups[i]);
        gid = squash_gid(gid);
    }
    if (setgroups((size_t)n, groups) != 0)
        return -errno;
    setfsgid(gid);
    setfsuid(uid);
    /* setfsuid reports failure only by not changing: check it took. */
    if ((uid_t)setfsuid((uid_t)-1) != uid || (gid_t)setfsgid((gid_t)-1) != gid)
        return -EPERM;
    return 0;
}

/* Back to root after an operation, which the log records as the server saw it. */
static int as_daemon(const char *op, const char *path, int err)
{
    /* fsuid first: it brings back the capabilities setgroups needs. */
    uid_t uid = (uid_t)setfsuid(0);
    setfsgid(0);
    setgroups(0, NULL);
    die_with_parent();
    if (oplog != NULL)
        fprintf(oplog, "%s uid=%u %s %s\n", op + 3, (unsigned)uid, path ? path : "-",
                err ? strerror(-err) : "ok");
    return err;
}

/* Runs EXPR as the caller; EXPR is a system call result (-1 and errno on failure). */
#define AS_CALLER(path, expr)                                                           \
    do {                                                                                \
        int err_ = as_caller();                                                         \
        if (err_ == 0 && (expr) == -1)                                                  \
            err_ = -errno;                                                              \
        return as_daemon(__func__, (path), err_);                                       \
    } while (0)

static int nfs4_flock = 0;

static void *sq_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    if (nfs4_flock)
        conn->want |= FUSE_CAP_FLOCK_LOCKS;
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->use_ino = 1;     /* the backing inode numbers, as NFS shows the server's */
    cfg->hard_remove = 1; /* no .fuse_hidden files: unlink and rename-over are real */
    cfg->nullpath_ok = 1;
    return NULL;
}

static int sq_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    /* The export's root answers anyone, as an NFS root file handle does. */
    if (fi != NULL)
        AS_CALLER(path, fstat((int)fi->fh, st));
    if (is_root(path))
        AS_CALLER(path, fstat(backing, st));
    AS_CALLER(path, fstatat(backing, rel(path), st, AT_SYMLINK_NOFOLLOW));
}

static int sq_access(const char *path, int mask)
{
    AS_CALLER(path, faccessat(backing, rel(path), mask, AT_EACCESS));
}

static int sq_readlink(const char *path, char *buf, size_t size)
{
    ssize_t n = 0;
    int err = as_caller();
    if (err == 0 && (n = readlinkat(backing, rel(path), buf, size - 1)) == -1)
        err = -errno;
    as_daemon(__func__, path, err);
    if (err == 0)
        buf[n] = '\0';
    return err;
}

static int sq_mkdir(const char *path, mode_t mode)
{
    AS_CALLER(path, mkdirat(backing, rel(path), mode));
}

static int sq_unlink(const char *path)
{
    AS_CALLER(path, unlinkat(backing, rel(path), 0));
}

static int sq_rmdir(const char *path)
{
    AS_CALLER(path, unlinkat(backing, rel(path), AT_REMOVEDIR));
}

static int sq_symlink(const char *target, const char *path)
{
    AS_CALLER(path, symlinkat(target, backing, rel(path)));
}

static int sq_link(const char *from, const char *to)
{
    AS_CALLER(to, linkat(backing, rel(from), backing, rel(to), 0));
}

static int sq_rename(const char *from, const char *to, unsigned int flags)
{
    /* The flags (RENAME_NOREPLACE) reach the backing file system unchanged. */
    AS_CALLER(to, renameat2(backing, rel(from), backing, rel(to), flags));
}

static int sq_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (fi != NULL)
        AS_CALLER(path, fchmod((int)fi->fh, mode));
    AS_CALLER(path, fchmodat(backing, rel(path), mode, 0));
}

static int sq_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    if (fi != NULL)
        AS_CALLER(path, fchown((int)fi->fh, uid, gid));
    AS_CALLER(path, fchownat(backing, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW));
}

static int sq_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (fi != NULL)
        AS_CALLER(path, ftruncate((int)fi->fh, size));
    int err = as_caller();
    int fd = -1;
    if (err == 0 && ((fd = openat(backing, rel(path), O_WRONLY | O_NOFOLLOW)) == -1 ||
                     ftruncate(fd, size) == -1))
        err = -errno;
    if (fd != -1)
        close(fd);
    as_daemon(__func__, path, err);
    return err;
}

static int sq_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    if (fi != NULL)
        AS_CALLER(path, futimens((int)fi->fh, tv));
    AS_CALLER(path, utimensat(backing, rel(path), tv, AT_SYMLINK_NOFOLLOW));
}

static int open_as_caller(const char *op, const char *path, struct fuse_file_info *fi, int flags,
                          mode_t mode)
{
    int fd = -1;
    int err = as_caller();
    if (err == 0 && (fd = openat(backing, rel(path), flags, mode)) == -1)
        err = -errno;
    as_daemon(op, path, err);
    if (err == 0)
        fi->fh = (uint64_t)fd;
    return err;
}

/* `--nfs4-flock-changing`: opens counted since the last refused lock (-1: none). */
static int change_after_refusal = 0;
static int opens_since_refusal = -1;

static int sq_open(const char *path, struct fuse_file_info *fi)
{
    if (opens_since_refusal >= 0 && ++opens_since_refusal == 2) {
        opens_since_refusal = -1;
        static const char line[] = "\" X_WRITTEN_BY_ANOTHER_HOST\n";
        int fd = openat(backing, rel(path), O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd == -1 || write(fd, line, sizeof line - 1) != (ssize_t)(sizeof line - 1))
            return -EIO;
        close(fd);
    }
    return open_as_caller("sq_open", path, fi, fi->flags, 0);
}

static int sq_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    /* Created with the caller's fsuid/fsgid: the owner NFS would record. */
    return open_as_caller("sq_create", path, fi, fi->flags | O_CREAT, mode);
}

static int sq_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    ssize_t n = pread((int)fi->fh, buf, size, off);
    return n == -1 ? -errno : (int)n;
}

static int sq_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)path;
    ssize_t n = 0;
    int err = as_caller();
    if (err == 0 && (n = pwrite((int)fi->fh, buf, size, off)) == -1)
        err = -errno;
    as_daemon(__func__, path, err);
    return err == 0 ? (int)n : err;
}

static int sq_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    return fstatvfs(backing, sv) == -1 ? -errno : 0;
}

static int sq_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    close((int)fi->fh);
    return 0;
}

static int sq_flock(const char *path, struct fuse_file_info *fi, int op)
{
    (void)path;
    int mode = fcntl((int)fi->fh, F_GETFL);
    if (mode == -1)
        return -errno;
    if ((op & LOCK_EX) && (mode & O_ACCMODE) == O_RDONLY) {
        if (change_after_refusal)
            opens_since_refusal = 0;
        return -EBADF;
    }
    return flock((int)fi->fh, op) == -1 ? -errno : 0;
}

static int sq_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    int r = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);
    return r == -1 ? -errno : 0;
}

static int sq_fallocate(const char *path, int mode, off_t off, off_t len,
                        struct fuse_file_info *fi)
{
    (void)path;
    AS_CALLER(path, fallocate((int)fi->fh, mode, off, len));
}

static int sq_opendir(const char *path, struct fuse_file_info *fi)
{
    DIR *d = NULL;
    int fd = -1;
    int err = as_caller();
    if (err == 0 && (fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY)) == -1)
        err = -errno;
    as_daemon(__func__, path, err);
    if (err == 0 && (d = fdopendir(fd)) == NULL) {
        err = -errno;
        close(fd);
    }
    if (err == 0)
        fi->fh = (uint64_t)(uintptr_t)d;
    return err;
}

static int sq_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)path;
    (void)off;
    (void)flags;
    DIR *d = (DIR *)(uintptr_t)fi->fh;
    struct dirent *e;
    rewinddir(d);
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        struct stat st = {.st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};
        if (fill(buf, e->d_name, &st, 0, 0))
            break;
    }
    return errno ? -errno : 0;
}

static int sq_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    int fd = dirfd((DIR *)(uintptr_t)fi->fh);
    int r = datasync ? fdatasync(fd) : fsync(fd);
    return r == -1 ? -errno : 0;
}

static int sq_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    closedir((DIR *)(uintptr_t)fi->fh);
    return 0;
}

static const struct fuse_operations ops = {
    .init = sq_init,
    .getattr = sq_getattr,
    .access = sq_access,
    .readlink = sq_readlink,
    .mkdir = sq_mkdir,
    .unlink = sq_unlink,
    .rmdir = sq_rmdir,
    .symlink = sq_symlink,
    .link = sq_link,
    .rename = sq_rename,
    .chmod = sq_chmod,
    .chown = sq_chown,
    .truncate = sq_truncate,
    .utimens = sq_utimens,
    .open = sq_open,
    .create = sq_create,
    .read = sq_read,
    .write = sq_write,
    .statfs = sq_statfs,
    .release = sq_release,
    .fsync = sq_fsync,
    .fallocate = sq_fallocate,
    .opendir = sq_opendir,
    .readdir = sq_readdir,
    .fsyncdir = sq_fsyncdir,
    .releasedir = sq_releasedir,
};

int main(int argc, char **argv)
{
    struct fuse_operations served = ops;
    if (argc > 1 && (strcmp(argv[1], "--nfs4-flock") == 0 ||
                     strcmp(argv[1], "--nfs4-flock-changing") == 0)) {
        change_after_refusal = strcmp(argv[1], "--nfs4-flock-changing") == 0;
        nfs4_flock = 1;
        served.flock = sq_flock;
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s BACKING MOUNTPOINT [LOG]\n", argv[0]);
        return 2;
    }
    if (argc == 4) {
        oplog = fopen(argv[3], "ae");
        if (oplog == NULL) {
            perror(argv[3]);
            return 1;
        }
        setvbuf(oplog, NULL, _IOLBF, 0);
    }
    parent = getppid();
    die_with_parent();
    backing = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (backing == -1) {
        perror(argv[1]);
        return 1;
    }
    /* The semantics are fixed here, not by whoever starts it: no default_permissions. */
    char *args[] = {argv[0], "-f", "-s", "-o",
                    "allow_other,fsname=ptotpsquash,subtype=ptotpsquash", argv[2], NULL};
    return fuse_main(6, args, &served, NULL);
}
