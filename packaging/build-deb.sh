#!/usr/bin/env bash
# Builds the Debian package pam-totp from the release build, with plain dpkg-deb (no
# debhelper, no cargo-deb). Output: target/debian/pam-totp_<version>-<rev>_<arch>.deb,
# its path printed on the last line.
#
#   ./packaging/build-deb.sh [--no-build]
#
#   --no-build   use target/release as it is instead of running cargo build first
#
# Environment: DEB_REVISION (default 1), DEB_MAINTAINER, SOURCE_DATE_EPOCH (default:
# the last commit's time, for a reproducible changelog date).
#
# What goes where (everything else in the tree stays out of the package):
#   /usr/lib/<multiarch>/security/pam_totp.so    target/release/libpam_totp.so
#   /usr/lib/<multiarch>/pam_totp/redis.so       target/release/libpam_totp_redis.so (the
#                                                Redis plugin, loaded only for state=redis…)
#   /usr/lib/<multiarch>/pam_totp/etcd.so        target/release/libpam_totp_etcd.so (the
#                                                etcd plugin, loaded only for state=etcd…)
#   /usr/bin/totp-enroll                         target/release/totp-enroll
#   /usr/sbin/totp-state                         target/release/totp-state
#   /usr/share/man/man8/pam_totp.8.gz            man/pam_totp.8
#   /usr/share/man/man1/totp-enroll.1.gz         man/totp-enroll.1
#   /usr/share/man/man8/totp-state.8.gz          man/totp-state.8
#   /usr/share/pam-configs/pam_totp              pam.d-examples/pam-configs/pam_totp
#   /usr/share/pam_totp/live-pam-lines           packaging/live-pam-lines (the scan of the
#                                                PAM files prerm runs; the RPM's is the same)
#   /usr/share/doc/pam-totp/                     README.md, SECURITY.md, changelog.gz (from
#                                                CHANGELOG.md, if present), docs/*.md under
#                                                docs/, copyright, changelog.Debian.gz
#   /usr/share/doc/pam-totp/examples/            pam.d-examples/
#   /etc/security/pam_totp_access.conf (conffile) pam.d-examples/pam_totp_access.conf
#                                                (every rule commented out: inert)
#   /etc/fail2ban/filter.d/pam-totp.conf (conffile) packaging/fail2ban/filter.d/
#   /var/lib/pam_totp/  (root, 0700)             empty secret store for store mode
#   /var/lib/pam_totp/state/  (root, 0700)       the module's state directory
#   /usr/share/lintian/overrides/pam-totp        packaging/debian/lintian-overrides
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

die() { echo "build-deb: $*" >&2; exit 1; }

build=1
for arg in "$@"; do
    case $arg in
        --no-build) build=0 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg (see --help)" ;;
    esac
done

command -v dpkg-deb >/dev/null || die "dpkg-deb not found (package dpkg)"

# Workspace version: the first `version = "..."` in [workspace.package].
version=$(sed -n '/^\[workspace\.package\]/,/^\[/{s/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p}' Cargo.toml | head -n 1)
[ -n "$version" ] || die "no version in [workspace.package] of Cargo.toml"
homepage=$(sed -n '/^\[workspace\.package\]/,/^\[/{s/^repository[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p}' Cargo.toml | head -n 1)
homepage=${homepage:-https://example.invalid/pam_totp}
revision=${DEB_REVISION:-1}
full_version="$version-$revision"
maintainer=${DEB_MAINTAINER:-pam_totp maintainers <maintainers@example.invalid>}
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || true)
[ -n "$multiarch" ] || die "cannot tell the multiarch triplet (install dpkg-dev)"
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$epoch

# The module looks for its plugins at a path fixed when it is built (totp-os remote.rs):
# /usr/lib/<triplet>/pam_totp/ for x86_64 and aarch64, else what these variables say.
plugin_dir=usr/lib/$multiarch/pam_totp
case $multiarch in
    x86_64-linux-gnu|aarch64-linux-gnu) ;;
    *) export PAM_TOTP_REDIS_PLUGIN=/$plugin_dir/redis.so PAM_TOTP_ETCD_PLUGIN=/$plugin_dir/etcd.so ;;
esac

if [ "$build" -eq 1 ]; then
    cargo build --release -p pam_totp -p pam_totp_redis -p pam_totp_etcd -p totp-enroll -p totp-state
fi

target_dir=${CARGO_TARGET_DIR:-$root/target}
module=$target_dir/release/libpam_totp.so
plugin=$target_dir/release/libpam_totp_redis.so
etcd_plugin=$target_dir/release/libpam_totp_etcd.so
enroll=$target_dir/release/totp-enroll
state_tool=$target_dir/release/totp-state

# Everything the package must contain; a missing piece is an error, not a smaller package.
missing=()
for f in "$module" "$plugin" "$etcd_plugin" "$enroll" "$state_tool" man/pam_totp.8 man/totp-enroll.1 man/totp-state.8 \
         README.md SECURITY.md \
         pam.d-examples/pam-configs/pam_totp packaging/debian/control \
         packaging/debian/copyright packaging/debian/changelog packaging/debian/postinst \
         packaging/debian/prerm packaging/debian/postrm packaging/debian/lintian-overrides \
         packaging/live-pam-lines; do
    [ -f "$f" ] || missing+=("$f")
done
shopt -s nullglob
docs=(docs/*.md)
shopt -u nullglob
[ "${#docs[@]}" -gt 0 ] || missing+=("docs/*.md")
if [ "${#missing[@]}" -gt 0 ]; then
    printf 'build-deb: MISSING: %s\n' "${missing[@]}" >&2
    die "cannot build the package without the files above"
fi
# A module that looks for the plugins elsewhere than where they are installed (built for
# another layout, or with --no-build from such a tree) would refuse every state=redis/etcd
# line that has no redis_plugin=/etcd_plugin=.
for p in redis etcd; do
    grep -qaF "/$plugin_dir/$p.so" "$module" \
        || die "$module does not look for its $p plugin at /$plugin_dir/$p.so (rebuild it)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/pam_totp-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
pkg=$work/pkg
umask 022
mkdir -p "$pkg/DEBIAN"

fill() {
    # Replaces the @NAME@ placeholders of a packaging template.
    sed -e "s|@VERSION@|$full_version|g" -e "s|@ARCH@|$arch|g" \
        -e "s|@MAINTAINER@|$maintainer|g" -e "s|@HOMEPAGE@|$homepage|g" \
        -e "s|@DATE@|$(LC_ALL=C date -u -R -d "@$epoch")|g" \
        -e "s|@DEPENDS@|${depends:-}|g" -e "s|@INSTALLED_SIZE@|${installed_size:-}|g" "$1"
}

# Binaries, stripped as Debian ships them. The module is a shared object: mode 0644.
security_dir=usr/lib/$multiarch/security
install -d "$pkg/$security_dir" "$pkg/usr/bin" "$pkg/usr/sbin"
install -m 0644 "$module" "$pkg/$security_dir/pam_totp.so"
install -m 0755 "$enroll" "$pkg/usr/bin/totp-enroll"
install -m 0755 "$state_tool" "$pkg/usr/sbin/totp-state"
# The Redis plugin, where the module looks for it by default (checked above).
install -d "$pkg/$plugin_dir"
install -m 0644 "$plugin" "$pkg/$plugin_dir/redis.so"
# The etcd plugin beside it (DEFAULT_ETCD_PLUGIN_PATH).
install -m 0644 "$etcd_plugin" "$pkg/$plugin_dir/etcd.so"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$pkg/$security_dir/pam_totp.so" "$pkg/$plugin_dir/redis.so" "$pkg/$plugin_dir/etcd.so" \
    "$pkg/usr/bin/totp-enroll" \
    "$pkg/usr/sbin/totp-state"

# Man pages.
install -d "$pkg/usr/share/man/man8" "$pkg/usr/share/man/man1"
gzip -9n < man/pam_totp.8 > "$pkg/usr/share/man/man8/pam_totp.8.gz"
gzip -9n < man/totp-enroll.1 > "$pkg/usr/share/man/man1/totp-enroll.1.gz"
gzip -9n < man/totp-state.8 > "$pkg/usr/share/man/man8/totp-state.8.gz"

# pam-auth-update profile (Default: no -- selected by an administrator, never by us).
grep -qx 'Default: no' pam.d-examples/pam-configs/pam_totp \
    || die "pam.d-examples/pam-configs/pam_totp must say 'Default: no'"
install -D -m 0644 pam.d-examples/pam-configs/pam_totp "$pkg/usr/share/pam-configs/pam_totp"

# The scan of the PAM files that refuses a removal while a live line names the module:
# prerm runs it (the package's files are still there then), and the RPM's %preun runs
# the same file from the same place.
grep -qF /usr/share/pam_totp/live-pam-lines packaging/debian/prerm \
    || die "packaging/debian/prerm does not run /usr/share/pam_totp/live-pam-lines"
install -D -m 0755 packaging/live-pam-lines "$pkg/usr/share/pam_totp/live-pam-lines"

# Documentation and examples.
doc=$pkg/usr/share/doc/pam-totp
install -d "$doc/docs" "$doc/examples"
install -m 0644 README.md SECURITY.md "$doc/"
# The upstream changelog under the name Debian policy gives it (12.7).
if [ -f CHANGELOG.md ]; then gzip -9n < CHANGELOG.md > "$doc/changelog.gz"; fi
install -m 0644 "${docs[@]}" "$doc/docs/"
cp -R pam.d-examples/. "$doc/examples/"
find "$doc/examples" -type d -exec chmod 0755 {} +
find "$doc/examples" -type f -exec chmod 0644 {} +
fill packaging/debian/copyright > "$doc/copyright"
fill packaging/debian/changelog | gzip -9n > "$doc/changelog.Debian.gz"
# Lintian overrides, each with its reason in the file.
install -D -m 0644 packaging/debian/lintian-overrides "$pkg/usr/share/lintian/overrides/pam-totp"

# Configuration files the examples name, installed inert: the access-rule file with every
# rule commented out (the sshd example's accessfile= then finds it and skips nobody), and
# the fail2ban filter (used only once a jail enables it). Conffiles: dpkg keeps an
# admin's edits across upgrades.
install -D -m 0644 pam.d-examples/pam_totp_access.conf "$pkg/etc/security/pam_totp_access.conf"
install -D -m 0644 packaging/fail2ban/filter.d/pam-totp.conf "$pkg/etc/fail2ban/filter.d/pam-totp.conf"

# Store-mode secret directory: root only. dpkg keeps it (with a note) on purge when
# secrets are in it, which is what we want.
install -d -m 0700 "$pkg/var/lib/pam_totp"
# The state directory (replay marks, throttling); the module would create it too.
install -d -m 0700 "$pkg/var/lib/pam_totp/state"

# Dependencies from the ELF files when dpkg-shlibdeps is there, else a known-good list.
depends=""
if command -v dpkg-shlibdeps >/dev/null; then
    mkdir -p "$work/shlibs/debian"
    printf 'Source: pam-totp\n\nPackage: pam-totp\nArchitecture: any\n' \
        > "$work/shlibs/debian/control"
    if out=$(cd "$work/shlibs" && dpkg-shlibdeps -O \
            "$pkg/$security_dir/pam_totp.so" "$pkg/$plugin_dir/redis.so" \
            "$pkg/$plugin_dir/etcd.so" "$pkg/usr/bin/totp-enroll" "$pkg/usr/sbin/totp-state" 2>/dev/null); then
        depends=${out#shlibs:Depends=}
    fi
fi
depends=${depends:-"libc6 (>= 2.34), libgcc-s1, libpam0g (>= 1.4.0), libssl3 (>= 3.0.0)"}
# pam-auth-update (libpam-runtime) reads the profile.
depends="$depends, libpam-runtime (>= 1.0.1-6)"

installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
fill packaging/debian/control > "$pkg/DEBIAN/control"
install -m 0755 packaging/debian/postinst "$pkg/DEBIAN/postinst"
install -m 0755 packaging/debian/prerm "$pkg/DEBIAN/prerm"
install -m 0755 packaging/debian/postrm "$pkg/DEBIAN/postrm"
printf '%s\n' /etc/security/pam_totp_access.conf /etc/fail2ban/filter.d/pam-totp.conf \
    > "$pkg/DEBIAN/conffiles"
chmod 0644 "$pkg/DEBIAN/conffiles"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
    | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/md5sums"

out_dir=$target_dir/debian
mkdir -p "$out_dir"
deb=$out_dir/pam-totp_${full_version}_${arch}.deb
rm -f "$deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null

echo "build-deb: contents:"
dpkg-deb --contents "$deb" | awk '{print "  " $1, $6}'
dpkg-deb --field "$deb" Package Version Architecture Depends | sed 's/^/  /'

if command -v lintian >/dev/null; then
    echo "build-deb: lintian (informational):"
    lintian --info "$deb" || true
else
    echo "build-deb: lintian not installed; skipped (optional)"
fi

echo "$deb"
