#!/usr/bin/env bash
# Builds an RPM of pam_totp from the release build with rpmbuild (Debian's "rpm" package
# provides it), using packaging/rpm/pam_totp.spec in its prebuilt mode. Output:
# target/rpm/pam_totp-<version>-1.<arch>.rpm, its path printed on the last line. The
# binaries are built in target/rpm-build with the plugin paths of %{_libdir}/pam_totp.
#
#   ./packaging/build-rpm.sh [--no-build]
#
# On Debian the RPM database is empty, so build dependencies are not checked (--nodeps);
# the spec lists them for source builds on RPM distributions.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

die() { echo "build-rpm: $*" >&2; exit 1; }

build=1
for arg in "$@"; do
    case $arg in
        --no-build) build=0 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg (see --help)" ;;
    esac
done

command -v rpmbuild >/dev/null || die "rpmbuild not found (Debian: apt-get install rpm)"
version=$(sed -n '/^\[workspace\.package\]/,/^\[/{s/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p}' Cargo.toml | head -n 1)
[ -n "$version" ] || die "no version in [workspace.package] of Cargo.toml"

# The module looks for its plugins at paths fixed when it is built (totp-os remote.rs);
# the RPM installs them under %{_libdir}/pam_totp, not the Debian multiarch directory the
# default names. A build of its own (not target/release, which build-deb.sh and the tests
# use with the Debian paths) carries the RPM paths.
libdir=$(rpm --eval '%{_libdir}' 2>/dev/null || true)
case $libdir in
    /?*) ;;
    *) die "rpm --eval '%{_libdir}' gave no absolute directory ('$libdir'): cannot fix the plugin paths" ;;
esac
export PAM_TOTP_REDIS_PLUGIN=$libdir/pam_totp/redis.so PAM_TOTP_ETCD_PLUGIN=$libdir/pam_totp/etcd.so
target_dir=${CARGO_TARGET_DIR:-$root/target}
rpm_target=$target_dir/rpm-build
if [ "$build" -eq 1 ]; then
    cargo build --release --target-dir "$rpm_target" \
        -p pam_totp -p pam_totp_redis -p pam_totp_etcd -p totp-enroll -p totp-state
fi
for f in "$rpm_target/release/libpam_totp.so" "$rpm_target/release/libpam_totp_redis.so" \
         "$rpm_target/release/libpam_totp_etcd.so" "$rpm_target/release/totp-enroll" \
         "$rpm_target/release/totp-state" man/pam_totp.8 man/totp-enroll.1 man/totp-state.8 \
         README.md SECURITY.md CHANGELOG.md packaging/live-pam-lines; do
    [ -f "$f" ] || die "MISSING: $f"
done
# A module that looks for the plugins elsewhere would refuse every state=redis…/etcd… line
# without redis_plugin=/etcd_plugin=.
for p in "$PAM_TOTP_REDIS_PLUGIN" "$PAM_TOTP_ETCD_PLUGIN"; do
    grep -qaF "$p" "$rpm_target/release/libpam_totp.so" \
        || die "$rpm_target/release/libpam_totp.so does not name $p (rebuild without --no-build)"
done

top=$(mktemp -d "${TMPDIR:-/tmp}/pam_totp-rpm.XXXXXX")
trap 'rm -rf "$top"' EXIT
rpmbuild -bb --nodeps \
    --define "_topdir $top" \
    --define "prebuilt_dir $root" \
    --define "prebuilt_target_dir $rpm_target" \
    --define "pkg_version $version" \
    packaging/rpm/pam_totp.spec

out_dir=$target_dir/rpm
mkdir -p "$out_dir"
rpm_file=$(find "$top/RPMS" -name 'pam_totp-*.rpm' | head -n 1)
[ -n "$rpm_file" ] || die "rpmbuild produced no package"
cp "$rpm_file" "$out_dir/"
rpm_file=$out_dir/$(basename "$rpm_file")
# Every path the man pages' FILES sections name is in the package (library paths
# excepted: the RPM's are under %{_libdir}; Debian's pam-auth-update profile; and the
# NFS server's export table and the /proc files the module reads, which it does not own).
named=$(for page in man/*.[18]; do
        sed -n '/^\.SH FILES/,/^\.SH /p' "$page" | sed -n 's/^\.IR\{0,1\} \(\/[^ ]*\).*/\1/p'
    done | sed -e 's/\\-/-/g' -e 's/[.,;:)]*$//' | grep -v -e '[<~]' -e '^/usr/lib/' -e '^/usr/share/pam-configs/' -e '^/var/lib/nfs/' -e '^/proc/' | LC_ALL=C sort -u)
[ -n "$named" ] || die "no paths found in the man pages' FILES sections"
listed=$(rpm -qlp "$rpm_file" 2>/dev/null)
for p in $named; do
    printf '%s\n' "$listed" | grep -qxF "$p" || die "the package lacks $p, which the man pages name"
done
# The packaged module names the plugin paths the package installs the plugins at.
mkdir "$top/unpacked"
if command -v rpm2archive >/dev/null; then
    rpm2archive - < "$rpm_file" | tar -xzf - -C "$top/unpacked"
elif command -v rpm2cpio >/dev/null && command -v cpio >/dev/null; then
    (cd "$top/unpacked" && rpm2cpio "$rpm_file" | cpio -id --quiet)
else
    die "cannot unpack the package to check it (neither rpm2archive nor rpm2cpio with cpio)"
fi
[ -f "$top/unpacked$libdir/security/pam_totp.so" ] || die "the package has no $libdir/security/pam_totp.so"
# The scan %preun runs is the .deb's prerm's, byte for byte.
cmp -s packaging/live-pam-lines "$top/unpacked/usr/share/pam_totp/live-pam-lines" \
    || die "the package's /usr/share/pam_totp/live-pam-lines differs from packaging/live-pam-lines"
for p in "$PAM_TOTP_REDIS_PLUGIN" "$PAM_TOTP_ETCD_PLUGIN"; do
    printf '%s\n' "$listed" | grep -qxF "$p" || die "the package does not install $p"
    grep -qaF "$p" "$top/unpacked$libdir/security/pam_totp.so" \
        || die "the packaged pam_totp.so does not look for a plugin at $p"
done
echo "build-rpm: the packaged module looks for its plugins at $PAM_TOTP_REDIS_PLUGIN and $PAM_TOTP_ETCD_PLUGIN"
echo "build-rpm: contents:"
rpm -qlp "$rpm_file" 2>/dev/null | sed 's/^/  /'
rpm -qp --requires "$rpm_file" 2>/dev/null | sed 's/^/  requires: /'
echo "$rpm_file"
