#!/usr/bin/env bash
# Installs what building, the demo and the test suite need on Debian 12.
# Idempotent: packages already present are left alone.
set -euo pipefail

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null; then sudo "$@"; else
            echo "install-deps: run as root (or install sudo)" >&2; exit 1; fi
    else
        "$@"
    fi
}

# Build: libpam0g-dev (link against libpam), libssl-dev (the Redis plugin's TLS, through
# the distribution's OpenSSL). Tests: the rest, each a real component nobody here wrote:
# GA's module, oathtool, zbarimg, sshd, libfaketime, strace, valgrind, redis-server (the
# fleet tests start their own), etcd-server and etcd-client (the etcd tests start their
# own three-member cluster and use etcdctl), openssl (their test CA), vlock (a real
# screen locker, run as the user: SECURITY.md E4) and sudo (tests/tests/sudo_front_end.rs
# runs the real sudo -S with a sudoers file of its own). libfuse3-dev: tests/root_squash.rs
# compiles an NFS root_squash stand-in (tests/fuse/ptotpsquash.c, a FUSE file system)
# against libfuse3; the tests mount it as root, so fusermount3 (package fuse3) is not
# needed, but /dev/fuse is. lintian: tests/e2e/deb-install.sh checks the .deb with it.
# nutcracker: twemproxy, a proxy the fleet tests put in front of redis-server to show how
# a store URL naming it is reported; iproute2 (ip): the same tests give a network
# namespace of their own a non-loopback address (tests/tests/fleet_wrong_server.rs).
# libcap2-bin: tests/containers.rs starts logins with capsh, capabilities dropped as a
# container drops them.
packages=(
    build-essential pkg-config libpam0g-dev libssl-dev redis-server etcd-server etcd-client
    openssl fail2ban
    pamtester libpam-wrapper faketime oathtool libpam-google-authenticator
    qrencode zbar-tools librsvg2-bin openssh-server openssh-client sshpass expect
    strace valgrind rpm dpkg-dev man-db vlock libfuse3-dev lintian sudo nutcracker iproute2
    libcap2-bin
)
if [ "${1:-}" = "--demo" ]; then
    packages=(build-essential pkg-config libpam0g-dev libssl-dev)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    need_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "install-deps: a Rust toolchain (cargo; tested with Rust 1.95) is required; install it with rustup" >&2
    exit 1
fi

# cargo-deny: the offline license, ban and source checks of deny.toml.
if [ "${1:-}" != "--demo" ] && ! cargo deny --version >/dev/null 2>&1; then
    echo "install-deps: installing cargo-deny"
    cargo install --locked --quiet cargo-deny@0.20.2
fi

if [ "${1:-}" != "--demo" ] && ! cargo fuzz --version >/dev/null 2>&1; then
    echo "install-deps: installing cargo-fuzz"
    cargo install --locked --quiet cargo-fuzz
fi
