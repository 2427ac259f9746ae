#!/usr/bin/env bash
# Fleets end to end: two real sshd "hosts" (copies of /usr/sbin/sshd on two loopback
# ports, each with its own PAM service and its own local state directory) share one
# redis-server this script starts on a random loopback port. A real OpenSSH client,
# driven by expect, logs in with codes from oathtool.
#
#   sudo ./tests/e2e/fleet-sshd.sh        # uses target/release of this tree
#
# Secrets come from secret_command= (no file in any home): a code accepted on host A is
# refused on host B and the other way round; a user the command does not know is "not
# enrolled" (nullok: password only); with the server stopped, logins are denied. Each
# case checks the password and code prompts the client saw, not only the outcome. One
# login at a time: the parallel race (32 processes over 4 hosts) is
# tests/tests/fleet_hosts.rs, through libpam.
#
# Nothing of the system's sshd or redis is touched; users, PAM files and processes made
# here are removed afterwards. Prints PASS/FAIL per case and "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=tests/e2e/lib.sh
. "$root/tests/e2e/lib.sh"

die() { echo "fleet-sshd-e2e: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (sshd, /etc/pam.d, test users): sudo $0"
for tool in ssh expect oathtool useradd chpasswd redis-server ss; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh)"
done
[ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd not found (openssh-server)"

tag=$(( $$ % 100000 ))
# The plugin and the secret command must be root-owned along the whole path, which a
# directory under /tmp is not: they live under target/.
# The plugin and the secret command must sit in a root-owned chain nobody else can write
# (the module checks it); the checkout may live under a world-writable /tmp, so they go
# to a directory of this run's own under /run.
trusted=/run/pam_totp-fleet-e2e-$tag
# Not below /tmp: the module refuses a state_dir= below a directory anyone can write.
work=$(mktemp -d /run/pam_totp-fleet.XXXXXX)
chmod 0755 "$work"
pids=()
pamfiles=()
users=()
created_run_sshd=no

cleanup() {
    set +e
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    for f in "${pamfiles[@]}"; do rm -f "$f"; done
    for u in "${users[@]}"; do shadow_tool userdel -r -f "$u" 2>/dev/null; done
    [ "$created_run_sshd" = yes ] && rmdir /run/sshd 2>/dev/null
    rm -rf "$work" "$trusted"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

cargo build --release -q -p pam_totp -p pam_totp_redis -p totp-state
module=$root/target/release/libpam_totp.so
install -d -m 0755 "$trusted"
# One link (cargo hard-links its outputs) and root-owned: what the module's check wants.
install -m 0755 "$root/target/release/libpam_totp_redis.so" "$trusted/redis.so"

free_port() {
    local p
    for _ in $(seq 1 20); do
        p=$(( 20000 + RANDOM % 20000 ))
        ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
    done
    die "no free port"
}

# ---- the shared server
rport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no --dir "$work" \
    --logfile "$work/redis.log" &
redis_pid=$!
pids+=("$redis_pid")
# Up to 30 s: a loaded CI machine may take seconds; a dead server ends the wait.
for _ in $(seq 1 600); do
    grep -q "Ready to accept connections" "$work/redis.log" 2>/dev/null && break
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.05
done
grep -q "Ready to accept connections" "$work/redis.log" || die "redis-server did not start"
# A new fleet's store is initialised once, as never used; without --never-used (or
# without init) the first login would count the current code as used (the store could
# have lost its data).
store_opts="state=redis://127.0.0.1:$rport redis_plugin=$trusted/redis.so redis_prefix=e2e$tag: redis_connect_timeout=500 redis_timeout=500"
"$root/target/release/totp-state" init --never-used --options "$store_opts" || die "totp-state init failed"

# ---- users
new_user() {
    local u=ptfl$tag$1
    shadow_tool userdel -r -f "$u" 2>/dev/null || true
    shadow_tool useradd -m -s /bin/sh -K UMASK=077 "$u"
    users+=("$u")
    echo "$u:pw-$u-9" | chpasswd
    REPLY=$u
}
new_user a; u_one=$REPLY
new_user b; u_two=$REPLY
new_user n; u_none=$REPLY     # the command says "not enrolled"
secret_one=$(head -c 20 /dev/urandom | base32 | tr -d '=')
secret_two=$(head -c 20 /dev/urandom | base32 | tr -d '=')

# The secret command: prints the users' files, "not enrolled" (exit 10) for anyone else.
cat > "$trusted/secret-command" <<EOF
#!/bin/sh
case "\$1" in
    $u_one) printf '%s\\n" TOTP_AUTH\\n' "$secret_one" ;;
    $u_two) printf '%s\\n" TOTP_AUTH\\n' "$secret_two" ;;
    *) exit 10 ;;
esac
EOF
chmod 0755 "$trusted/secret-command"

# ---- two hosts
if [ ! -d /run/sshd ]; then mkdir -m 0755 /run/sshd; created_run_sshd=yes; fi
ssh-keygen -q -t ed25519 -N '' -C fleet-e2e -f "$work/host_key"
start_host() {
    local name=$1 service=sshd-ptfleet-$tag-$1 port
    port=$(free_port)
    install -d -m 0700 "$work/state-$name"
    cp /usr/sbin/sshd "$work/$service"
    cat > "/etc/pam.d/$service" <<EOF
auth required pam_unix.so
auth [success=ok ignore=ignore default=die] $module nullok $store_opts state_dir=$work/state-$name secret_command=$trusted/secret-command secret_command_user=nobody
account required pam_permit.so
session required pam_permit.so
EOF
    pamfiles+=("/etc/pam.d/$service")
    cat > "$work/sshd_config-$name" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $work/host_key
PidFile $work/sshd-$name.pid
AllowUsers ${users[*]}
UsePAM yes
KbdInteractiveAuthentication yes
PasswordAuthentication no
PubkeyAuthentication no
AuthenticationMethods keyboard-interactive
PermitRootLogin no
UseDNS no
LogLevel VERBOSE
MaxAuthTries 2
LoginGraceTime 30
PrintMotd no
PrintLastLog no
EOF
    "$work/$service" -t -f "$work/sshd_config-$name" || die "sshd -t rejected the configuration"
    "$work/$service" -D -f "$work/sshd_config-$name" -E "$work/sshd-$name.log" &
    pids+=("$!")
    # Up to 30 s, as for the server above.
    for _ in $(seq 1 300); do
        grep -q "Server listening" "$work/sshd-$name.log" 2>/dev/null && break
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    grep -q "Server listening" "$work/sshd-$name.log" || die "sshd $name did not start"
    REPLY=$port
}
start_host a; port_a=$REPLY
start_host b; port_b=$REPLY
echo "fleet-sshd-e2e: redis on $rport, host A on $port_a, host B on $port_b"

# try PORT USER CODE "case" ok|password-only|denied|replayed
# Every case checks the prompts the client saw as well as the outcome: one password
# prompt always (pam_unix), and one code prompt except for a user the command does not
# know (nullok: password only). A denial is a finished login attempt with both prompts
# answered and a non-zero exit, never a timeout; "replayed" is a denial whose client was
# told the code was already used (the replay, not any other fault, refused it).
try() {
    local port=$1 user=$2 code=$3 what=$4 want=$5 out line used started elapsed expected
    started=$(date +%s)
    out=$(expect "$root/tests/e2e/login.exp" "$port" "$user" "pw-$user-9" "$code" - "m$RANDOM" 2>&1 \
        | grep '^E2E' || true)
    line=$(printf '%s\n' "$out" | grep '^E2E pw=' | tail -n 1 || true)
    if grep -q '^E2E-MSG used' <<<"$out"; then used=1; else used=0; fi
    elapsed=$(( $(date +%s) - started ))
    case $want in
        ok) expected="E2E pw=1 code=1 ok=1 status=0" ;;
        password-only) expected="E2E pw=1 code=0 ok=1 status=0" ;;
        denied|replayed) expected="E2E pw=1 code=1 ok=0 status=" ;;
        *) die "try: unknown outcome $want" ;;
    esac
    if [[ "$line" == "$expected"* ]] \
        && { [ "$want" != denied ] && [ "$want" != replayed ] || [[ "$line" != *"status=0" ]]; } \
        && { [ "$want" != replayed ] || [ "$used" = 1 ]; }; then
        pass "$what (${elapsed} s)"
    else
        fail "$what: want ${expected}...$([ "$want" = replayed ] && echo ' and the client told the code was used'), got ${line:-no result} (told used: $used)"
        tail -n 8 "$work"/sshd-*.log | sed 's/^/    /'
    fi
}

for u in "$u_one" "$u_two" "$u_none"; do
    h=$(getent passwd "$u" | cut -d: -f6)
    [ ! -e "$h/.google_authenticator" ] || die "unexpected secret file for $u"
done
code=$(totp_now "$secret_one")
try "$port_a" "$u_one" "$code" "host A: password and the code of the command's secret log in" ok
try "$port_b" "$u_one" "$code" "host B refuses the code host A accepted, as already used" replayed
code=$(totp_now "$secret_two")
try "$port_b" "$u_two" "$code" "host B: another user logs in" ok
try "$port_a" "$u_two" "$code" "host A refuses the code host B accepted, as already used" replayed
try "$port_a" "$u_none" 000000 "not enrolled (exit 10) with nullok: the password alone" password-only

kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
sleep 31   # a fresh step, so a refusal below can only come from the stopped server
try "$port_a" "$u_one" "$(totp_now "$secret_one")" "with the server stopped, a right code is denied" denied

summary
