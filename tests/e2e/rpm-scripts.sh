#!/usr/bin/env bash
# Checks the RPM from packaging/build-rpm.sh without installing it (this is a Debian
# host): its %preun scriptlet, run by sh as rpm runs it, refuses an erase ($1 = 0) while
# a hand-written live pam.d line names pam_totp.so (in /etc/pam.d or a vendor directory,
# /usr/lib/pam.d), names the file and line, never refuses an upgrade ($1 = 1), lets the
# erase go once the line is commented out, and only warns about a backup file
# (sshd.rpmsave) PAM never reads; and the packaged module looks for its plugins where the
# package installs them.
#
#   sudo ./tests/e2e/rpm-scripts.sh [path/to/pam_totp-*.rpm | packaging/rpm/pam_totp.spec]
#
# Default package: the newest target/rpm/pam_totp-*.rpm. Given the spec instead, only the
# scriptlet is checked (taken with rpmspec -P; no build needed). Needs root (it writes
# files in /etc/pam.d and /usr/lib/pam.d, deleted again), rpm and rpm2archive. Prints
# PASS/FAIL per case.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=tests/e2e/lib.sh
. "$root/tests/e2e/lib.sh"

die() { echo "rpm-scripts: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (writes a file in /etc/pam.d): sudo $0"
for tool in rpm rpm2archive tar; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install rpm)"
done
rpm_file=${1:-$(ls -t "$root"/target/rpm/pam_totp-*.rpm 2>/dev/null | head -n 1 || true)}
[ -n "$rpm_file" ] && [ -f "$rpm_file" ] || die "no package; build it first: ./packaging/build-rpm.sh"
echo "rpm-scripts: testing $rpm_file"

# Any live line already on this host would make the control fail for another reason.
if grep -Hns '^[^#]*pam_totp\.so' /etc/pam.conf /etc/pam.d/* /usr/lib/pam.d/* /usr/etc/pam.d/* 2>/dev/null; then
    die "this host's PAM files already name pam_totp.so (above): the erase case cannot be told apart"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pam_totp-rpmtest.XXXXXX")
tag=ptrpm$(( $$ % 100000 ))
handfile=/etc/pam.d/$tag-hand
backupfile=/etc/pam.d/$tag-sshd.rpmsave
vendorfile=/usr/lib/pam.d/$tag-vendor
made_vendor_dir=no
[ -d /usr/lib/pam.d ] || { mkdir -p /usr/lib/pam.d; made_vendor_dir=yes; }
cleanup() {
    rm -f "$handfile" "$backupfile" "$vendorfile"
    [ "$made_vendor_dir" = no ] || rmdir /usr/lib/pam.d 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [ "${rpm_file%.spec}" != "$rpm_file" ]; then
    rpmspec -P "$rpm_file" | sed -n '/^%preun$/,/^%files$/p' | sed '1d;$d' > "$work/preun.sh"
    check "the spec has a %preun" test -s "$work/preun.sh"
else
    rpm -qp --queryformat '%{PREUNPROG}\n' "$rpm_file" > "$work/preun.prog"
    rpm -qp --queryformat '%{PREUN}\n' "$rpm_file" > "$work/preun.sh"
    check "the package has a %preun run by /bin/sh" grep -qx /bin/sh "$work/preun.prog"
fi
run_preun() { sh "$work/preun.sh" "$1" > "$work/out" 2>&1; }

printf 'auth required pam_unix.so\nauth required pam_totp.so nullok\n' > "$handfile"
if run_preun 0; then
    fail "an erase is refused while a hand-written pam.d line uses pam_totp.so"
else
    pass "an erase is refused while a hand-written pam.d line uses pam_totp.so"
fi
check "the refusal names the file and line, and what to do" \
    sh -c "grep -qF '$handfile:2:auth required pam_totp.so nullok' '$work/out' \
           && grep -q 'NOT removing' '$work/out' && grep -q 'comment them out' '$work/out'"
check "an upgrade (\$1 = 1) is not refused for the same line" run_preun 1
# The control: the line commented out, and the erase goes ahead.
sed -i 's/^auth required pam_totp/# auth required pam_totp/' "$handfile"
check "an erase goes ahead once the line is commented out" run_preun 0

# A backup file PAM never reads as a service: named in a warning, not refused.
printf 'auth required pam_unix.so\nauth required pam_totp.so nullok\n' > "$backupfile"
check "an erase goes ahead with a live line only in $backupfile" run_preun 0
check "the erase warns about the backup file's line" \
    sh -c "grep -q 'warning: backup files' '$work/out' \
           && grep -qF '$backupfile:2:auth required pam_totp.so nullok' '$work/out' \
           && ! grep -q 'NOT removing' '$work/out'"
# A vendor directory (openSUSE's /usr/lib/pam.d): refused like /etc/pam.d.
printf 'auth required pam_totp.so\n' > "$vendorfile"
if run_preun 0; then
    fail "an erase is refused while a line in $vendorfile uses pam_totp.so"
else
    check "an erase is refused while a line in $vendorfile uses pam_totp.so, naming it" \
        sh -c "grep -qF '$vendorfile:1:auth required pam_totp.so' '$work/out' && grep -q 'NOT removing' '$work/out'"
fi
rm -f "$vendorfile" "$backupfile"
check "an erase goes ahead once the vendor file is gone (control)" run_preun 0

if [ "${rpm_file%.spec}" != "$rpm_file" ]; then
    echo "note: a spec, not a package: the packaged module's plugin paths are not checked"
    summary
    exit $?
fi

# The packaged module names the plugin paths the package installs the plugins at.
libdir=$(rpm --eval '%{_libdir}')
mkdir "$work/unpacked"
rpm2archive - < "$rpm_file" | tar -xzf - -C "$work/unpacked"
for p in redis etcd; do
    check "the packaged module looks for its $p plugin at $libdir/pam_totp/$p.so, which the package installs" \
        sh -c "rpm -qlp '$rpm_file' 2>/dev/null | grep -qxF '$libdir/pam_totp/$p.so' \
               && grep -qaF '$libdir/pam_totp/$p.so' '$work/unpacked$libdir/security/pam_totp.so'"
done

summary
