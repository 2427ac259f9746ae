#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then lint, build, unit and
# integration tests through the real libpam (root-only tests included), fuzz smoke runs,
# the .deb build and install, the sshd end-to-end test against the installed package, and
# valgrind. Run as root on a Debian 12 machine:  sudo ./scripts/test-all.sh
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
logdir=$root/target/test-logs
mkdir -p "$logdir"

if [ "$(id -u)" -ne 0 ]; then
    echo "test-all: the suite includes root-only tests (credential switches, sshd, dpkg);" >&2
    echo "test-all: run it as root: sudo $0" >&2
    exit 1
fi

./scripts/install-deps.sh || { echo "test-all: dependency installation failed" >&2; exit 1; }
# A toolchain install-deps.sh installed with rustup is in ~/.cargo/bin.
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"

passed=0
failed=0
failed_stages=()
stage() {
    local name=$1; shift
    echo "=== stage: $name"
    local start=$SECONDS
    if "$@" >"$logdir/$name.log" 2>&1; then
        echo "--- ok: $name ($((SECONDS - start)) s)"
        passed=$((passed + 1))
    else
        echo "--- FAILED: $name ($((SECONDS - start)) s); last lines of $logdir/$name.log:"
        tail -n 60 "$logdir/$name.log"
        failed=$((failed + 1))
        failed_stages+=("$name")
    fi
}

# Root-only tests must run, never skip: the harness fails them when CI=true and they
# cannot run. Locally we set it too so a root run is a full run.
export CI=true

stage fmt cargo fmt --all --check
stage clippy cargo clippy --workspace --all-targets -- -D warnings
# Licenses, duplicate versions and sources (deny.toml). `cargo fetch` only fills the local
# cache with the lock file's packages; the check itself never uses the network.
stage deny sh -c 'cargo fetch --locked -q && cargo deny --offline check licenses bans sources'
stage build cargo build --workspace --release
stage doc env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
stage build-debug cargo build --workspace
stage cargo-test cargo test --workspace --no-fail-fast -- --test-threads=2
stage fuzz-smoke ./scripts/fuzz-smoke.sh
stage deb ./packaging/build-deb.sh
stage rpm ./packaging/build-rpm.sh
stage rpm-scripts ./tests/e2e/rpm-scripts.sh
stage deb-install ./tests/e2e/deb-install.sh
stage sshd ./tests/e2e/sshd.sh
stage fleet-sshd ./tests/e2e/fleet-sshd.sh
stage valgrind ./tests/e2e/valgrind.sh
stage bench-smoke ./tests/e2e/bench-smoke.sh
stage demo ./tests/e2e/demo.sh

# Test counts from cargo's own result lines, for the summary.
read -r tests_passed tests_failed < <(grep -h "^test result:" "$logdir/cargo-test.log" 2>/dev/null \
    | awk '{for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) }}
           END { print p + 0, f + 0 }')
echo
echo "cargo tests: ${tests_passed:-0} passed, ${tests_failed:-0} failed"
if [ "$failed" -gt 0 ]; then
    echo "failed stages: ${failed_stages[*]}"
fi
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
