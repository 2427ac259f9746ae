#!/usr/bin/env bash
# Instructions per login of one benchmark case, by step (docs/performance.md, "Profile of
# the normal-user path"). Runs `pam-bench --only KEY --exact` under
# `valgrind --tool=callgrind`, counting only inside pam_start_confdir, pam_authenticate
# and pam_end (the timed region; the bench's own refresh between logins is left out),
# with the `profiling` build of the module (release settings, symbols kept), and prints
# the inclusive count of each step divided by the number of logins. Instruction counts
# do not depend on the machine's load; they do not show system calls, page faults or
# mapping costs (use strace and perf for those).
#
#   sudo ./scripts/profile-login.sh totp-home-hammered [BUDGET_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

key=${1:?usage: profile-login.sh CASE-KEY [BUDGET_SECONDS]}
budget=${2:-10}
cargo build --release -p pam-bench >/dev/null 2>&1
cargo build --profile profiling -p pam_totp >/dev/null 2>&1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out" \
    --toggle-collect=pam_start_confdir --toggle-collect=pam_authenticate \
    --toggle-collect=pam_end \
    ./target/release/pam-bench --module "$PWD/target/profiling/libpam_totp.so" \
    --only "$key" --exact --budget "$budget" >/dev/null 2>&1

# Logins: the calls of pam_authenticate (callgrind names a function in full once, then
# by its number).
logins=$(awk '
    /^c?fn=\(/ {
        id = $1; sub(/^c?fn=/, "", id)
        if (NF > 1) { name[id] = $2 }
        if ($1 ~ /^cfn=/) callee = name[id]
        next
    }
    /^calls=/ { split($1, c, "="); if (callee == "pam_authenticate") n += c[2] }
    END { print n + 0 }' "$out")
[ "$logins" -gt 0 ] || { echo "no login was recorded" >&2; exit 1; }
echo "$key: $logins logins; thousands of instructions per login, inclusive"
callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null | awk -v n="$logins" '
    BEGIN {
        split("PROGRAM TOTALS|dlopen@@|dlclose@@|audit_log_acct_message|auth::authenticate_with|ModuleOptions::parse|target::resolve|skip::decide|Named::with_identity|Ctx::preread|Ctx>::evaluate|verify::prepare|StateStore>::context|StateDir as totp_core::state::StateStore>::update|PamIo>::log", pat, "|")
        split("all (pam_start to pam_end)|loading the module|unloading the module|libpam audit record|pam_sm_authenticate|  options|  user lookup(s)|  skip rules|  group list (R4)|  pre-read of the secret|  evaluation|    window and tags|    store key|    record read-modify-write|  log lines", label, "|")
    }
    {
        line = $0
        count = $1; gsub(/,/, "", count)
        if (count !~ /^[0-9]+$/) next
        count += 0
        for (i in pat) if (index(line, pat[i]) && count > best[i] + 0) best[i] = count
    }
    END {
        for (i = 1; i <= length(pat); i++)
            printf "%8.0f  %s\n", best[i] / n / 1000, label[i]
    }'
