#!/usr/bin/env bash
# Builds an RPM of pam_totp from the release build with rpmbuild (Debian's "rpm" package
# provides it), using packaging/rpm/pam_totp.spec in its prebuilt mode. Output:
# target/rpm/pam_totp-<version>-1.<arch>.rpm, its path printed on the last line.
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
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg (see --help)" ;;
    esac
done

command -v rpmbuild >/dev/null || die "rpmbuild not found (Debian: apt-get install rpm)"
version=$(sed -n '/^\[workspace\.package\]/,/^\[/{s/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p}' Cargo.toml | head -n 1)
[ -n "$version" ] || die "no version in [workspace.package] of Cargo.toml"

if [ "$build" -eq 1 ]; then
    cargo build --release -p pam_totp -p pam_totp_redis -p pam_totp_etcd -p totp-enroll -p totp-state
fi
target_dir=${CARGO_TARGET_DIR:-$root/target}
for f in "$target_dir/release/libpam_totp.so" "$target_dir/release/libpam_totp_redis.so" \
         "$target_dir/release/libpam_totp_etcd.so" "$target_dir/release/totp-enroll" \
         "$target_dir/release/totp-state" man/pam_totp.8 man/totp-enroll.1 man/totp-state.8 \
         README.md SECURITY.md CHANGELOG.md; do
    [ -f "$f" ] || die "MISSING: $f"
done

# The spec reads target/release under prebuilt_dir; point it at the real target dir.
src=$root
if [ "$target_dir" != "$root/target" ]; then
    die "CARGO_TARGET_DIR outside the tree is not supported by the spec's prebuilt mode"
fi

# The spec's source build fixes the plugins' default path at %{_libdir}/pam_totp; a
# prebuilt module keeps the one it was built with (the .deb's, on Debian).
libdir=$(rpm --eval '%{_libdir}')
if ! grep -qaF "$libdir/pam_totp/redis.so" "$target_dir/release/libpam_totp.so"; then
    echo "build-rpm: note: this module looks for its plugins elsewhere than $libdir/pam_totp/;" \
        "with this RPM, state=redis…/etcd… lines need redis_plugin=/etcd_plugin=" >&2
fi

top=$(mktemp -d "${TMPDIR:-/tmp}/pam_totp-rpm.XXXXXX")
trap 'rm -rf "$top"' EXIT
rpmbuild -bb --nodeps \
    --define "_topdir $top" \
    --define "prebuilt_dir $src" \
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
echo "build-rpm: contents:"
rpm -qlp "$rpm_file" 2>/dev/null | sed 's/^/  /'
rpm -qp --requires "$rpm_file" 2>/dev/null | sed 's/^/  requires: /'
echo "$rpm_file"
