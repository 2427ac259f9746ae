#!/usr/bin/env bash
# Bounded fuzz smoke run: every cargo-fuzz target for FUZZ_SECONDS (default 30) seconds,
# one after the other, seeded from fuzz/seeds/<target> with fuzz/dict/<target>.dict.
# Fails on the first crash, leak, timeout or out-of-memory (libFuzzer exits non-zero
# and leaves the input in fuzz/artifacts/<target>/).
#
# Installs nothing: cargo-fuzz comes from scripts/install-deps.sh. Works on a stable
# toolchain: cargo-fuzz passes nightly-only flags (-Zsanitizer=address, coverage), which
# RUSTC_BOOTSTRAP=1 allows on stable. See docs/fuzzing.md.
#
#   ./scripts/fuzz-smoke.sh                 # all targets, 30 s each
#   FUZZ_SECONDS=300 ./scripts/fuzz-smoke.sh secret_file base32
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${FUZZ_SECONDS:-30}
all_targets=(secret_file access_rules module_args code_input base32 otpauth_uri)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: cargo-fuzz is not installed; run ./scripts/install-deps.sh" >&2
    exit 1
fi

# Longest input per target, near each parser's own cap.
max_len() {
    case $1 in
        secret_file) echo 65600 ;;   # 64 KiB file cap + a little
        access_rules) echo 16384 ;;  # many rules; the 1 MiB cap is unit-tested
        otpauth_uri) echo 4200 ;;    # MAX_URI_LEN 4096 + a little
        code_input) echo 1024 ;;
        *) echo 4096 ;;
    esac
}

export RUSTC_BOOTSTRAP=1
echo "fuzz-smoke: building targets"
(cd fuzz && cargo fuzz build -O)

failed=()
for t in "${targets[@]}"; do
    corpus=$root/fuzz/corpus/$t
    mkdir -p "$corpus" "$root/fuzz/artifacts/$t"
    echo "=== fuzz $t (${seconds} s)"
    # The first directory receives new inputs; the seeds are read-only input.
    log=$root/fuzz/artifacts/$t/last-run.log
    set +e
    (cd fuzz && cargo fuzz run -O "$t" "$corpus" "$root/fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$(max_len "$t")" -dict="$root/fuzz/dict/$t.dict" \
        -print_final_stats=1) >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|peak_rss_mb)|==[0-9]+==ERROR|^SUMMARY|Test unit written|panicked at' "$log" || true
    if [ "$rc" -ne 0 ] || grep -qE '==[0-9]+==ERROR|^SUMMARY: |Test unit written' "$log"; then
        echo "--- FAILED: $t (exit $rc; input saved under fuzz/artifacts/$t/, log $log)"
        failed+=("$t")
    else
        echo "--- ok: $t"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-smoke: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz-smoke: ${#targets[@]} targets, ${seconds} s each, no crash"
