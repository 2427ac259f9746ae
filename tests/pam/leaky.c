/*
 * A PAM module that leaves something behind, the negative control of the unload test
 * (tests/tests/module_edges.rs, SECURITY.md G6): its pam_sm_authenticate installs a
 * SIGUSR2 handler inside itself and starts a thread that never ends (in pause),
 * then fails the login. After pam_end unmaps it, the handler points into unmapped code: the test's
 * checks must see both.
 */
#define PAM_SM_AUTH
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <security/pam_modules.h>

static void on_usr2(int sig) { (void)sig; }

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc,
                                   const char **argv) {
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = on_usr2;
    sigaction(SIGUSR2, &act, NULL);
    /* The thread runs libc's pause, not code of this module: a thread started in
     * the module could still be entering it when pam_end unmaps it, and crash the
     * test's process rather than be counted. */
    pthread_t t;
    if (pthread_create(&t, NULL, (void *(*)(void *))(void (*)(void))pause, NULL) == 0)
        pthread_detach(t);
    return PAM_AUTH_ERR;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc,
                              const char **argv) {
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    return PAM_SUCCESS;
}
