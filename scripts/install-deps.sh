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

# Rust: Debian 12's own rustc is too old for the crates' edition, so a machine without
# cargo gets rustup's toolchain for this user (in ~/.cargo, nothing system-wide), the
# release the project is tested with; demo.sh and test-all.sh look there too.
rust_release=1.95.0
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
    echo "install-deps: no cargo: installing Rust $rust_release with rustup into $HOME/.cargo"
    if ! command -v curl >/dev/null; then
        need_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl ca-certificates >/dev/null
    fi
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --no-modify-path --profile minimal \
            --default-toolchain "$rust_release" --component rustfmt,clippy ||
        { echo "install-deps: installing Rust failed; install it with rustup (https://rustup.rs)" >&2; exit 1; }
    export PATH="$HOME/.cargo/bin:$PATH"
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
