#!/usr/bin/env bash
# Checks the RPM from packaging/build-rpm.sh without installing it (this is a Debian
# host): its %preun scriptlet, run by sh as rpm runs it, refuses an erase ($1 = 0) while
# a hand-written live pam.d line names pam_totp.so (in /etc/pam.d or a vendor directory,
# /usr/lib/pam.d), names the file and line, never refuses an upgrade ($1 = 1), lets the
# erase go once the line is commented out, and only warns about a backup file
# (sshd.rpmsave) PAM never reads; and the packaged module looks for its plugins where the
# package installs them. The scan is the shared /usr/share/pam_totp/live-pam-lines: the
# package ships it byte-identical to packaging/live-pam-lines and to the .deb's copy, the
# scriptlet runs it by that path (here: the copy unpacked from the package), and an erase
# is refused when it cannot run (an upgrade is not). Its %post, on an upgrade ($1 = 2)
# only, runs the new totp-state's audit of each service with a live line through the same
# script: a store below a group-writable directory is named in a WARNING, a 0755 one is
# named clean, and the scriptlet exits 0 either way.
#
#   sudo ./tests/e2e/rpm-scripts.sh [path/to/pam_totp-*.rpm | packaging/rpm/pam_totp.spec]
#
# Default package: the newest target/rpm/pam_totp-*.rpm. Given the spec instead, only the
# scriptlet is checked (taken with rpmspec -P; no build needed). Needs root (it writes
# files in /etc/pam.d and /usr/lib/pam.d, deleted again), rpm and rpm2archive (and
# dpkg-deb to compare the newest .deb's scan, required when CI=true). Prints
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
upfile=/etc/pam.d/$tag-upgrade
stores=/var/lib/$tag-stores
made_vendor_dir=no
[ -d /usr/lib/pam.d ] || { mkdir -p /usr/lib/pam.d; made_vendor_dir=yes; }
cleanup() {
    rm -f "$handfile" "$backupfile" "$vendorfile" "$upfile"
    rm -rf "$stores"
    [ "$made_vendor_dir" = no ] || rmdir /usr/lib/pam.d 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

live=/usr/share/pam_totp/live-pam-lines
if [ "${rpm_file%.spec}" != "$rpm_file" ]; then
    rpmspec -P "$rpm_file" | sed -n '/^%preun$/,/^%files$/p' | sed '1d;$d' > "$work/preun.installed"
    rpmspec -P "$rpm_file" | sed -n '/^%post$/,/^%preun$/p' | sed '1d;$d' > "$work/post.installed"
    check "the spec has a %preun" test -s "$work/preun.installed"
    # Unbuilt: the scan is the tree's copy.
    helper=$root/packaging/live-pam-lines
else
    rpm -qp --queryformat '%{PREUNPROG}\n' "$rpm_file" > "$work/preun.prog"
    rpm -qp --queryformat '%{PREUN}\n' "$rpm_file" > "$work/preun.installed"
    check "the package has a %preun run by /bin/sh" grep -qx /bin/sh "$work/preun.prog"
    rpm -qp --queryformat '%{POSTINPROG}\n' "$rpm_file" > "$work/post.prog"
    rpm -qp --queryformat '%{POSTIN}\n' "$rpm_file" > "$work/post.installed"
    check "the package has a %post run by /bin/sh" grep -qx /bin/sh "$work/post.prog"
    mkdir "$work/unpacked"
    rpm2archive - < "$rpm_file" | tar -xzf - -C "$work/unpacked"
    helper=$work/unpacked$live
    check "the package installs $live, mode 0755" \
        sh -c "rpm -qlpv '$rpm_file' 2>/dev/null | grep -E '^-rwxr-xr-x .* $live\$' | grep -q ."
    check "the package's $live is byte-identical to packaging/live-pam-lines" \
        cmp -s "$root/packaging/live-pam-lines" "$helper"
    # Both packages ship the same scan: the .deb's copy compared with the RPM's directly.
    deb=$(newest_deb "$root" || true)
    if [ -n "$deb" ]; then
        dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ".$live" > "$work/deb-live-pam-lines" || true
        check "the .deb ($(basename "$deb")) ships the same $live byte for byte" \
            sh -c "test -s '$work/deb-live-pam-lines' && cmp -s '$work/deb-live-pam-lines' '$helper'"
    elif [ "${CI:-}" = true ]; then
        fail "a .deb to compare $live with (./packaging/build-deb.sh)"
    else
        echo "note: no .deb built; its $live is not compared with the RPM's"
    fi
fi
# The scriptlet runs the scan by its installed path and nothing else does the scanning
# (no pam.d directory named in it); here that path is pointed at the package's copy.
check "the %preun runs $live and scans nothing itself" \
    sh -c "grep -qF 'live=$live' '$work/preun.installed' && ! grep -q 'pam\.d' '$work/preun.installed'"
sed "s|$live|$helper|g" "$work/preun.installed" > "$work/preun.sh"
sed "s|$live|$work/missing/live-pam-lines|g" "$work/preun.installed" > "$work/preun-missing.sh"
run_preun() { sh "$work/preun.sh" "$1" > "$work/out" 2>&1; }

# The scan must run for an erase to go: without it the erase is refused, an upgrade not.
# (The controls: the erases below that go ahead with the scan in place.)
if sh "$work/preun-missing.sh" 0 > "$work/out-missing" 2>&1; then
    fail "an erase is refused when $live cannot run"
else
    check "an erase is refused when $live cannot run, saying so" \
        sh -c "grep -q 'NOT removing pam_totp' '$work/out-missing' && grep -q 'could not check the PAM files' '$work/out-missing'"
fi
check "an upgrade (\$1 = 1) does not need $live" sh "$work/preun-missing.sh" 1
check "an erase goes ahead with no live line (control)" run_preun 0

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

# ---- %post: the audit an upgrade runs, by the installed totp-state (here the tree's).
tool=/usr/sbin/totp-state
built=$root/target/release/totp-state
[ -x "$built" ] || built=$root/target/debug/totp-state
check "the %post runs $live audit-upgrade with $tool" \
    grep -qF "$live audit-upgrade pam_totp $tool" "$work/post.installed"
if [ -x "$built" ]; then
    sed -e "s|$live|$helper|g" -e "s|$tool|$built|g" "$work/post.installed" > "$work/post.sh"
    run_post() { sh "$work/post.sh" "$1" > "$work/out" 2>&1; }
    mkdir -m 0755 "$stores" "$stores/ok"
    mkdir "$stores/local"
    chgrp staff "$stores/local" 2>/dev/null || true
    chmod 2775 "$stores/local"
    mkdir -m 0700 "$stores/local/totp"
    check "an upgrade's %post with no live line exits 0 and prints nothing" \
        sh -c "sh '$work/post.sh' 2 > '$work/out' 2>&1 && test ! -s '$work/out'"
    printf 'auth required pam_totp.so nullok user=root secret=%s/${USER}\n' "$stores/local/totp" > "$upfile"
    check "a first installation's %post (\$1 = 1) audits nothing" \
        sh -c "sh '$work/post.sh' 1 > '$work/out' 2>&1 && test ! -s '$work/out'"
    check "an upgrade's %post exits 0 with a store below a group-writable directory" run_post 2
    check "... and prints a WARNING naming the service, root's refusal and the directory" \
        sh -c "grep -q 'pam_totp: WARNING: after this upgrade pam_totp refuses these accounts' '$work/out' \
               && grep -q 'pam_totp: WARNING: $tag-upgrade;' '$work/out' \
               && grep -qF 'pam_totp:     root: refused: $stores/local/totp/root: directory $stores/local is owned by uid 0 with mode 2775' '$work/out' \
               && ! grep -q 'no account refused' '$work/out'"
    # The control: the same line with a store in 0755 directories.
    printf 'auth required pam_totp.so nullok user=root secret=%s/${USER}\n' "$stores/ok" > "$upfile"
    check "an upgrade's %post with a store in 0755 directories exits 0" run_post 2
    check "... and prints one line naming the service clean, no WARNING" \
        sh -c "[ \"\$(cat '$work/out')\" = 'pam_totp: audit after the upgrade: no account refused (PAM services: $tag-upgrade)' ]"
    rm -f "$upfile"
elif [ "${CI:-}" = true ]; then
    fail "a built totp-state to run the %post's audit with (cargo build -p totp-state)"
else
    echo "note: no totp-state built; the %post's audit is not run"
fi

if [ "${rpm_file%.spec}" != "$rpm_file" ]; then
    echo "note: a spec, not a package: the packaged module's plugin paths are not checked"
    summary
    exit $?
fi

# The packaged module names the plugin paths the package installs the plugins at.
libdir=$(rpm --eval '%{_libdir}')
for p in redis etcd; do
    check "the packaged module looks for its $p plugin at $libdir/pam_totp/$p.so, which the package installs" \
        sh -c "rpm -qlp '$rpm_file' 2>/dev/null | grep -qxF '$libdir/pam_totp/$p.so' \
               && grep -qaF '$libdir/pam_totp/$p.so' '$work/unpacked$libdir/security/pam_totp.so'"
done

summary
