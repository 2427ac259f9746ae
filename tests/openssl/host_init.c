/* A host that initialises OpenSSL with its configuration before any PAM module runs, as
 * sshd does for its own keys: preloaded into pam-drive (LD_PRELOAD), it loads the file
 * OPENSSL_CONF names, or openssl.cnf, at start. The fleet plugins then find OpenSSL
 * initialised and that configuration in force (fleet_tls_verification.rs). */
#include <openssl/ssl.h>

__attribute__((constructor)) static void host_init(void)
{
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
}
