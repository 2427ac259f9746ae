#!/usr/bin/env bash
# Memory checks of the module under valgrind, through the real libpam: target/debug/
# pam-drive runs one transaction per case against a throwaway confdir stack that loads
# target/debug/libpam_totp.so by absolute path (SECURITY.md case F7, rule R30).
#
#   sudo ./tests/e2e/valgrind.sh
#
# Cases: success (home mode as a real user, so the credential switch runs; and store mode
# as root), wrong code, replayed code, unknown user, invalid user name, bad file (mode and
# contents), missing file with nullok, conversation error, NULL reply, no answer, bad
# module argument, and setcred after a success. Control: a small C program with a use
# after free and a definite leak, run with the same valgrind flags, is caught.
#
# valgrind: --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite, so any
# invalid read/write, use of uninitialised memory, bad free or *definite* leak fails the
# case. "Still reachable" and "possibly lost" blocks (dlopen bookkeeping, glibc's and Rust
# std's process-lifetime allocations) are not errors. tests/e2e/valgrind.supp suppresses
# definite leaks inside libpam/glibc only, each entry documented; nothing in pam_totp is
# suppressed.
#
# Needs root (creates and deletes a user), valgrind, oathtool. Prints PASS/FAIL per case
# and "N passed, N failed"; exits non-zero on any failure. Logs: target/valgrind/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=tests/e2e/lib.sh
. "$root/tests/e2e/lib.sh"

die() { echo "valgrind-e2e: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (creates a test user)"
command -v valgrind >/dev/null || die "valgrind is not installed (scripts/install-deps.sh)"
command -v oathtool >/dev/null || die "oathtool is not installed (scripts/install-deps.sh)"

cargo build -q -p pam_totp -p pamapp
module=$root/target/debug/libpam_totp.so
driver=$root/target/debug/pam-drive
[ -f "$module" ] && [ -x "$driver" ] || die "build did not produce $module and $driver"

logs=$root/target/valgrind
rm -rf "$logs"
mkdir -p "$logs"
# Not below /tmp: the module refuses a state_dir= below a directory anyone can write.
work=$(mktemp -d /run/pam_totp-valgrind.XXXXXX)
chmod 700 "$work"
user=ptvg$$
cleanup() {
    shadow_tool userdel -r -f "$user" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A real user with a home-mode secret.
shadow_tool useradd -m -s /bin/sh -K UMASK=077 "$user"
home=$(getent passwd "$user" | cut -d: -f6)
secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP
write_user_secret() {
    printf '%s\n" TOTP_AUTH\n' "$secret" >"$home/.google_authenticator"
    chown "$user:" "$home/.google_authenticator"
    chmod 600 "$home/.google_authenticator"
}
write_user_secret

# Store mode: root-owned files under $work/store, keyed by the PAM user name.
store=$work/store
mkdir -m 700 "$store"
printf '%s\n" TOTP_AUTH\n' "$secret" >"$store/root"
printf 'this is not base32!\n" TOTP_AUTH\n' >"$store/garbage"
printf '%s\n" TOTP_AUTH\n' "$secret" >"$store/openperm"
chmod 600 "$store/root" "$store/garbage"
chmod 644 "$store/openperm"

# A state directory of this run's own: the default one may hold records of earlier
# accounts with the same uid.
state=$work/state
mkdir -m 700 "$state"

confdir=$work/pam.d
mkdir "$confdir"
echo "auth required pam_deny.so" >"$confdir/other"
echo "auth required $module state_dir=$state" >"$confdir/home"
echo "auth required $module nullok state_dir=$state" >"$confdir/nullok"
echo "auth required $module bogus_option" >"$confdir/badarg"
echo "auth required $module user=root secret=$store/\${USER} state_dir=$state" >"$confdir/store"

# valgrind_run LOG COMMAND...: valgrind as every case runs it, its report in LOG.
valgrind_run() {
    local log=$1
    shift
    valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
        --show-leak-kinds=definite --track-origins=yes --num-callers=30 \
        --suppressions="$root/tests/e2e/valgrind.supp" --log-file="$log" "$@"
}
# valgrind_errors LOG: the report names an error the cases fail on.
valgrind_errors() {
    grep -qE '== (Invalid|Conditional|Use of uninit|Mismatched|Syscall param|Source and destination)|are definitely lost' "$1"
}

# Control: the same valgrind run, flags and suppressions catches a use after free and a
# definite leak, so a clean case below is clean, not unexamined.
command -v cc >/dev/null || die "cc is not installed (scripts/install-deps.sh)"
cat >"$work/faulty.c" <<'C'
#include <stdlib.h>
int main(void) {
    char *volatile leaked = malloc(64);
    leaked[0] = 1;
    leaked = 0;
    char *volatile freed = malloc(8);
    free(freed);
    return freed[0] == 42;
}
C
cc -O0 -g -o "$work/faulty" "$work/faulty.c"
control_rc=0
valgrind_run "$logs/control-faulty.log" "$work/faulty" </dev/null || control_rc=$?
if [ "$control_rc" -eq 1 ] && grep -q '== Invalid read' "$logs/control-faulty.log" \
    && grep -q 'are definitely lost' "$logs/control-faulty.log"; then
    pass "control: the checks catch a use after free and a definite leak"
else
    fail "control: the checks catch a use after free and a definite leak (exit $control_rc, see $logs/control-faulty.log)"
fi

# vg NAME EXPECTED-RESULT pam-drive-args...
vg() {
    local name=$1 want=$2
    shift 2
    local log=$logs/$name.log out rc=0
    out=$(valgrind_run "$log" "$driver" --confdir "$confdir" "$@" </dev/null) || rc=$?
    local result
    result=$(printf '%s\n' "$out" | sed -n 's/^result //p')
    if [ ! -f "$log" ]; then
        fail "$name: valgrind did not run"
        return
    fi
    # Exit 1 is valgrind's --error-exitcode (PAM code 1, PAM_OPEN_ERR, is not expected).
    if [ "$rc" -eq 1 ] || valgrind_errors "$log"; then
        fail "$name: valgrind reported errors (see $log)"
        return
    fi
    if [ -z "$result" ]; then
        fail "$name: driver failed (exit $rc, see $log)"
        return
    fi
    if [ "$result" != "$want" ]; then
        fail "$name: result $result, expected $want"
        return
    fi
    pass "$name ($result, valgrind clean)"
}

# The same code twice: computed once, because under valgrind the clock may reach the next
# step between the runs, and a fresh code for a new step is (rightly) accepted.
code=$(totp_now "$secret")
vg success-home PAM_SUCCESS --service home --user "$user" --answer "$code" --setcred
vg replay-home PAM_AUTH_ERR --service home --user "$user" --answer "$code"
write_user_secret
vg wrong-code PAM_AUTH_ERR --service home --user "$user" --answer "$(totp_wrong "$secret")"
write_user_secret
vg success-store PAM_SUCCESS --service store --user root --answer "$(totp_now "$secret")"
vg unknown-user PAM_AUTH_ERR --service home --user nosuchuser-ptvg --answer 123456
vg invalid-user-name PAM_AUTH_ERR --service home --user ../../etc/x --answer 123456
vg bad-file-contents PAM_AUTH_ERR --service store --user garbage --answer 123456
vg bad-file-mode PAM_AUTH_ERR --service store --user openperm --answer 123456
vg missing-file PAM_AUTH_ERR --service store --user nofile --answer 123456
vg conv-error PAM_CONV_ERR --service home --user "$user" --conv-fail PAM_CONV_ERR
vg null-reply PAM_AUTH_ERR --service home --user "$user" --null-answer
vg null-array PAM_CONV_ERR --service home --user "$user" --null-array
vg bad-argument PAM_SERVICE_ERR --service badarg --user "$user" --answer 123456
rm -f "$home/.google_authenticator"
# A lone PAM_IGNORE in a stack is turned into a failure by libpam; the module ran.
vg nullok-no-file PAM_PERM_DENIED --service nullok --user "$user"

summary
