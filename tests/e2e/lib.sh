# Shared by the end-to-end scripts (sourced, not run): per-case PASS/FAIL lines, the
# closing "N passed, N failed" line, and small helpers. Needs bash.

e2e_passed=0
e2e_failed=0

pass() { echo "PASS: $*"; e2e_passed=$((e2e_passed + 1)); }
fail() { echo "FAIL: $*"; e2e_failed=$((e2e_failed + 1)); }

# check "description" command...  -- PASS when the command succeeds.
check() {
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# Prints the summary line; returns non-zero when any case failed.
summary() {
    echo "$e2e_passed passed, $e2e_failed failed"
    [ "$e2e_failed" -eq 0 ]
}

# shadow_tool PROGRAM ARGS...: a shadow-suite tool (useradd, usermod, groupadd, userdel)
# run again while another process's tool holds the user database, which makes it give
# up at once with "cannot lock FILE; try again later"; for at most 60 s. Its standard
# output is discarded, its last standard error shown when it fails.
shadow_tool() {
    local err rc=1
    for _ in $(seq 1 600); do
        if err=$(LC_ALL=C "$@" 2>&1 >/dev/null); then
            return 0
        else
            rc=$?
        fi
        case $err in
            *"try again later"*) sleep 0.1 ;;
            *) break ;;
        esac
    done
    printf '%s\n' "$err" >&2
    return "$rc"
}

# The workspace's version from [workspace.package] in Cargo.toml.
workspace_version() {
    sed -n '/^\[workspace\.package\]/,/^\[/{s/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p}' \
        "$1/Cargo.toml" | head -n 1
}

# The newest .deb built by packaging/build-deb.sh, or nothing.
newest_deb() {
    local d
    d=$(ls -t "$1"/target/debian/pam-totp_*.deb 2>/dev/null | head -n 1 || true)
    [ -n "$d" ] && echo "$d"
}

# The PAM module directory libpam searches for bare module names.
pam_security_dir() {
    local triplet
    triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
    echo "/usr/lib/$triplet/security"
}

# The first line of a secret file (the base32 secret), read as root.
secret_of() { head -n 1 "$1"; }

totp_now() { oathtool --totp -b "$1"; }

# A six-digit code that is wrong now: differs from the codes two steps either side.
totp_wrong() {
    local secret=$1 near c i
    near=$(for i in -60 -30 0 30 60; do oathtool --totp -b -N "@$(( $(date +%s) + i ))" "$secret"; done)
    c=$(( (10#$(oathtool --totp -b "$secret") + 500001) % 1000000 ))
    while printf '%s\n' "$near" | grep -qx "$(printf '%06d' "$c")"; do
        c=$(( (c + 1) % 1000000 ))
    done
    printf '%06d\n' "$c"
}
