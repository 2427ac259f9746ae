#!/usr/bin/env bash
# The benchmark runs and prints what issues 21 and 22 ask of it: a short `pam-bench` run
# of the right-code rows (the local store, Redis and etcd it starts itself, in process
# and in a fresh process per login), the stores alone (bench/src/wire.rs, two round
# trips and one) and the goal lines with their ratios. Figures are not judged (timing
# goals belong to `make bench`); that each is printed, as a number, is, and that the
# shared stores' rows leave the page faults of the others alone.
#
#   sudo ./tests/e2e/bench-smoke.sh
#
# Needs root (pam-bench's mount namespace and its test user), redis-server, etcd and
# etcdctl, and Debian's libpam-google-authenticator (scripts/install-deps.sh), and the
# release build (`cargo build --workspace --release`). Prints PASS/FAIL per check and
# "N passed, N failed"; exits non-zero on any failure. Log: target/bench-smoke.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=tests/e2e/lib.sh
. "$root/tests/e2e/lib.sh"

die() { echo "bench-smoke: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root"
for tool in redis-server etcd etcdctl; do
    command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps.sh)"
done
bench=$root/target/release/pam-bench
[ -x "$bench" ] || die "no $bench: cargo build --workspace --release"

log=$root/target/bench-smoke.log
# The servers running before, to tell any the bench leaves behind.
servers() { { pgrep -x redis-server || true; pgrep -x etcd || true; } | sort; }
before=$(servers)
status=0
"$bench" --only right --budget 0.2 >"$log" 2>&1 || status=$?
check "pam-bench exits 0 (see $log)" [ "$status" -eq 0 ]

# has REGEX: the log has a line matching REGEX (extended).
has() { grep -Eq -- "$1" "$log"; }
us='[0-9]+(\.[0-9]+)? (µs|ms)'
ratio='[0-9]+(\.[0-9]+)?×'

for module in 'pam_totp\.so' 'totp\+Redis' 'totp\+etcd'; do
    check "a right-code row for $module with its median" has "^right code +$module +$us"
done
check "the fresh-process rows" has "^-- right code, fresh process"
check "Redis alone, two round trips" has "^  Redis: connect, .*: median $us, p90 $us, n [0-9]+"
check "Redis alone, one round trip" has "^  Redis in one round trip: .*: median $us, p90 $us, n [0-9]+"
check "etcd alone, two requests" has "^  etcd: connect .*: median $us, p90 $us, n [0-9]+"
check "etcd alone, one request" has "^  etcd in one request: .*: median $us, p90 $us, n [0-9]+"
check "the Redis goal line with its ratio" \
    has "^(PASS|FAIL)  right code through Redis ≤ 1\.2× the local store: $ratio"
check "the etcd goal line with its ratio" \
    has "^(PASS|FAIL)  right code through etcd ≤ 3× the local store: $ratio"
check "a best ratio under each shared-store goal" \
    test "$(grep -Ec -- "at best, .*: $ratio in two round trips, $ratio in one" "$log")" -eq 2
check "no server the bench started is left running" test "$(servers)" = "$before"

# The shared stores' flush runs before their own rows only, and forks nothing: a local
# row's logins find the process as a run without those rows leaves it. Page faults per
# login are a count, not a time: the in-process floor (pam_permit) faults as often in
# this run as in one of the floor alone (the etcdctl fork of an earlier flush added
# about 60 copy-on-write faults to every row's login).
floor_faults() { awk '$1 == "floor" && $2 == "pam_permit.so" { print $9; exit }' "$1"; }
alone=$root/target/bench-smoke-floor.log
"$bench" --only permit --exact --budget 0.2 >"$alone" 2>&1 || true
with_stores=$(floor_faults "$log")
without=$(floor_faults "$alone")
check "the floor faults as often with the shared stores' rows ($with_stores) as alone ($without)" \
    awk -v a="${with_stores:-x}" -v b="${without:-y}" \
    'BEGIN { exit !(a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && a <= b + 3) }'

summary
