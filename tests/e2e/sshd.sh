#!/usr/bin/env bash
# End to end through a real sshd and a real OpenSSH client: the project's sshd PAM
# examples and sshd_config snippets, keyboard-interactive answered by expect, codes
# from oathtool, secrets written by totp-enroll.
#
#   sudo ./tests/e2e/sshd.sh                 # the installed package (default)
#   sudo ./tests/e2e/sshd.sh --workspace     # target/release of this tree instead
#   (or PAM_TOTP_E2E_WORKSPACE=1)
#
# Package mode uses /usr/lib/<triplet>/security/pam_totp.so (named "pam_totp.so" in the
# PAM file, as an administrator would) and /usr/bin/totp-enroll. If pam-totp is not
# installed but packaging/build-deb.sh has built a .deb, that .deb is installed for the
# duration of the test and purged afterwards.
#
# Nothing of the system's sshd is touched: a copy of /usr/sbin/sshd named
# sshd-pamtotp-<pid> runs from a temporary directory on 127.0.0.1 with its own config,
# host key and port. sshd uses its program name as the PAM service, so the copy reads
# /etc/pam.d/sshd-pamtotp-<pid>, which this script writes and removes. Test users and a
# test group are created and deleted. Needs root, openssh-server, openssh-client,
# expect, oathtool.
#
# Prints PASS/FAIL per case and "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=tests/e2e/lib.sh
. "$root/tests/e2e/lib.sh"

die() { echo "sshd-e2e: $*" >&2; exit 1; }

mode=package
[ "${PAM_TOTP_E2E_WORKSPACE:-}" = 1 ] && mode=workspace
for arg in "$@"; do
    case $arg in
        --workspace) mode=workspace ;;
        --package) mode=package ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg (see --help)" ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "needs root (sshd, /etc/pam.d, test users): sudo $0"
for tool in ssh ssh-keygen expect oathtool useradd chpasswd; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh)"
done
[ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd not found (openssh-server)"

tag=$(( $$ % 100000 ))
service=sshd-pamtotp-$tag
pamfile=/etc/pam.d/$service
[ ! -e "$pamfile" ] || die "$pamfile exists already; not touching it"
work=$(mktemp -d "${TMPDIR:-/tmp}/pam_totp-sshd.XXXXXX")
chmod 0755 "$work"
# The access-rule file must be root-controlled along its whole path (R21), which a
# directory under /tmp (mode 1777) is not: it lives under /run.
rules_dir=$(mktemp -d /run/pam_totp-sshd-rules.XXXXXX)
chmod 0755 "$rules_dir"
sshd_pid=""
created_run_sshd=no
installed_deb=no
# The package's purge keeps a state directory that holds anything (a used code must stay
# used across a reinstall): one this test's logins created is removed here.
if [ -e /var/lib/pam_totp ]; then had_state=yes; else had_state=no; fi
users=()
state_tool=
group=ptsg$tag
group_auto=ptsa$tag

cleanup() {
    set +e
    if [ -n "$sshd_pid" ]; then
        kill "$sshd_pid" 2>/dev/null
        wait "$sshd_pid" 2>/dev/null
    fi
    rm -f "$pamfile"
    for u in "${users[@]}"; do
        [ -n "$state_tool" ] && "$state_tool" reset --user "$u" >/dev/null 2>&1
        shadow_tool userdel -r -f "$u" 2>/dev/null
    done
    shadow_tool groupdel "$group" 2>/dev/null
    shadow_tool groupdel "$group_auto" 2>/dev/null
    [ "$created_run_sshd" = yes ] && rmdir /run/sshd 2>/dev/null
    if [ "$installed_deb" = yes ]; then
        dpkg --purge pam-totp >/dev/null 2>&1
        [ "$had_state" = no ] && rm -rf /var/lib/pam_totp
    fi
    rm -rf "$work" "$rules_dir"
}
trap cleanup EXIT
# A signal ends the script through exit, so the EXIT trap cleans up.
trap 'exit 130' INT TERM HUP

# ---- what to test
if [ "$mode" = workspace ]; then
    cargo build --release -q -p pam_totp -p totp-enroll -p totp-state
    module_ref=$root/target/release/libpam_totp.so
    enroll=$root/target/release/totp-enroll
    state_tool=$root/target/release/totp-state
else
    secdir=$(pam_security_dir)
    if ! dpkg-query -W -f='${Status}' pam-totp 2>/dev/null | grep -q "install ok installed"; then
        deb=$(newest_deb "$root" || true)
        [ -n "$deb" ] || die "pam-totp is not installed and no .deb is built; run ./packaging/build-deb.sh, or use --workspace"
        echo "sshd-e2e: installing $deb for this test (purged afterwards)"
        installed_deb=yes
        dpkg -i "$deb" >/dev/null
    fi
    [ -f "$secdir/pam_totp.so" ] || die "$secdir/pam_totp.so missing although pam-totp is installed"
    # The PAM file names the module the way an administrator's would: by bare name,
    # resolved by libpam in the security directory.
    module_ref=pam_totp.so
    enroll=/usr/bin/totp-enroll
    state_tool=/usr/sbin/totp-state
fi
[ -x "$enroll" ] || die "$enroll missing"
echo "sshd-e2e: mode $mode; module $module_ref; enrollment $enroll"

# ---- users: one per case family, so that one case's accepted code or failures never
# affect another (replay protection allows one login per 30-s step and account).
# Sets $REPLY to the new user's name (no subshell: the cleanup list must see it).
new_user() {
    local u=ptse$tag$1
    shadow_tool userdel -r -f "$u" 2>/dev/null || true
    shadow_tool useradd -m -s /bin/sh -K UMASK=077 "$u"
    users+=("$u")
    # The state store is keyed on the uid, and useradd reuses uids: forget whatever an
    # earlier account with this uid left (with the admin tool under test).
    "$state_tool" reset --user "$u" >/dev/null || die "totp-state reset --user $u failed"
    echo "$u:pw-$u-9" | chpasswd
    REPLY=$u
}
password_of() { echo "pw-$1-9"; }
home_of() { getent passwd "$1" | cut -d: -f6; }

# Enrolls with the totp-enroll under test; sets $SECRET. Fails the case (and returns
# non-zero) when enrollment does not produce a file.
enroll_user() {
    local u=$1 file
    file=$(home_of "$u")/.google_authenticator
    SECRET=""
    if ! "$enroll" --user "$u" --time-based --disallow-reuse --minimal-window \
            --no-rate-limit --force --no-confirm --quiet --non-interactive \
            > "$work/enroll-$u.log" 2>&1 || [ ! -s "$file" ]; then
        fail "totp-enroll enrolls $u: $(tail -n 3 "$work/enroll-$u.log")"
        return 1
    fi
    pass "totp-enroll enrolls $u ($(stat -c '%U %a' "$file"))"
    SECRET=$(secret_of "$file")
}

new_user pw; u_pw=$REPLY     # password + code, wrong code, replay, wrong password
new_user new; u_new=$REPLY   # never enrolled (nullok)
new_user lan; u_lan=$REPLY   # access rule for 127.0.0.1
new_user grp; u_grp=$REPLY   # skip_group member
new_user key; u_key=$REPLY   # publickey + code
new_user auto; u_auto=$REPLY # the snippets' key-only exemption group
shadow_tool groupadd "$group"
shadow_tool usermod -a -G "$group" "$u_grp"
shadow_tool groupadd "$group_auto"
shadow_tool usermod -a -G "$group_auto" "$u_auto"

# ---- sshd: own binary name, config, host key, port
mkdir -m 0700 "$work/bin" "$work/keys"
cp /usr/sbin/sshd "$work/bin/$service"
ssh-keygen -q -t ed25519 -N '' -C pam_totp-e2e-host -f "$work/keys/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C pam_totp-e2e-client -f "$work/keys/client_ed25519"
key=$work/keys/client_ed25519
for u in "$u_key" "$u_auto"; do
    key_home=$(home_of "$u")
    install -d -m 0700 -o "$u" -g "$u" "$key_home/.ssh"
    install -m 0600 -o "$u" -g "$u" "$key.pub" "$key_home/.ssh/authorized_keys"
done
# root's key for this sshd only: named by AuthorizedKeysFile in the test's config, in a
# root-owned directory whose whole path passes sshd's StrictModes; root's own
# ~/.ssh is not touched.
install -m 0600 -o root -g root "$key.pub" "$rules_dir/authorized_keys-root"
if [ ! -d /run/sshd ]; then
    mkdir -m 0755 /run/sshd
    created_run_sshd=yes
fi

port=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    p=$(( 2222 + RANDOM % 20000 ))
    if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then port=$p; break; fi
done
[ -n "$port" ] || die "no free port found"

# The access-rule file: the loopback address skips the code, for u_lan only.
printf '+ : %s : 127.0.0.1\n' "$u_lan" > "$rules_dir/access.conf"
chmod 0644 "$rules_dir/access.conf"

# Writes the PAM file from an example: module reference, access-rule path, group skip.
install_pam() {
    local example=$1
    awk -v mod="$module_ref" -v acc="$rules_dir/access.conf" -v grp="$group" '
        /^[[:space:]]*#/ || NF == 0 { print; next }
        {
            hit = 0
            for (i = 1; i <= NF; i++) {
                if ($i == "pam_totp.so") { $i = mod; hit = 1 }
                sub("/etc/security/pam_totp_access.conf", acc, $i)
            }
            if (hit) $0 = $0 " skip_group=" grp
            print
        }' "$root/pam.d-examples/$example" > "$pamfile"
    chmod 0644 "$pamfile"
}

# start_sshd SNIPPET [SED-EXPRESSION]: the expression edits the snippet further (a
# control case that deletes one of its blocks).
start_sshd() {
    local snippet=$1 edit=${2:-}
    stop_sshd
    # The snippet as shipped, with the test's group in place of its exemption group.
    sed -e "s/ssh-keyonly/$group_auto/g" ${edit:+-e "$edit"} "$root/pam.d-examples/$snippet" \
        > "$work/snippet.conf"
    # The project's snippet comes first: sshd keeps the first value it reads, exactly as
    # with Debian's "Include /etc/ssh/sshd_config.d/*.conf" at the top of sshd_config.
    cat > "$work/sshd_config" <<EOF
Include $work/snippet.conf
Port $port
ListenAddress 127.0.0.1
HostKey $work/keys/host_ed25519
PidFile $work/sshd.pid
AllowUsers root ${users[*]}
# Debian's default, which refuses keyboard-interactive to root: root gets in by the
# snippet's "Match User root" block and its key, or not at all.
PermitRootLogin prohibit-password
AuthorizedKeysFile .ssh/authorized_keys $rules_dir/authorized_keys-%u
UseDNS no
LogLevel VERBOSE
MaxAuthTries 4
LoginGraceTime 30
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
EOF
    "$work/bin/$service" -t -f "$work/sshd_config" || die "sshd -t rejected the configuration"
    : > "$work/sshd.log"
    "$work/bin/$service" -D -f "$work/sshd_config" -E "$work/sshd.log" &
    sshd_pid=$!
    # Up to 30 s: a loaded CI machine may take seconds; a dead sshd ends the wait.
    for _ in $(seq 1 300); do
        grep -q "Server listening" "$work/sshd.log" 2>/dev/null && return 0
        kill -0 "$sshd_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$work/sshd.log" >&2
    die "sshd did not start"
}

stop_sshd() {
    if [ -n "$sshd_pid" ]; then
        kill "$sshd_pid" 2>/dev/null || true
        wait "$sshd_pid" 2>/dev/null || true
        sshd_pid=""
    fi
}


# login USER PASSWORD CODE KEYFILE -> sets L_PW L_CODE L_OK L_STATUS (the client is
# tests/e2e/login.exp)
login() {
    local line
    local out
    out=$(expect "$root/tests/e2e/login.exp" "$port" "$1" "$2" "$3" "$4" "m$RANDOM" 2>&1 || true)
    line=$(grep '^E2E ' <<<"$out" | tail -n 1 || true)
    if grep -q '^E2E-MSG used' <<<"$out"; then L_USED=1; else L_USED=0; fi
    L_PW=$(sed -n 's/.* pw=\([0-9]*\).*/\1/p' <<<"$line")
    L_CODE=$(sed -n 's/.* code=\([0-9]*\).*/\1/p' <<<"$line")
    L_OK=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
    L_STATUS=$(sed -n 's/.* status=\([0-9]*\).*/\1/p' <<<"$line")
    L_LINE=$line
}

# expect_login "case" ok|denied PW_PROMPTS CODE_PROMPTS
expect_login() {
    local what=$1 want=$2 pw=$3 code=$4 got
    if [ "$want" = ok ]; then
        [ "$L_OK" = 1 ] && [ "$L_STATUS" = 0 ] && got=yes || got=no
    else
        [ "$L_OK" = 0 ] && [ "$L_STATUS" != 0 ] && [ -n "$L_STATUS" ] && got=yes || got=no
    fi
    if [ "$got" = yes ] && [ "$L_PW" = "$pw" ] && [ "$L_CODE" = "$code" ]; then
        pass "$what"
    else
        fail "$what (want $want with $pw password and $code code prompts; got: ${L_LINE:-nothing})"
        echo "---- last sshd log lines:"
        tail -n 15 "$work/sshd.log" | sed 's/^/    /'
    fi
}

# told_used "case": the last login's client saw the module's replay message (sshd hands
# PAM's error messages to keyboard-interactive as text, also on the failing round).
told_used() {
    if [ "$L_USED" = 1 ]; then pass "$1"; else fail "$1 (got: ${L_LINE:-nothing})"; fi
}

# ==== Phase 1: password, then code (pam.d-examples/sshd + sshd_config-password.conf)
install_pam sshd
start_sshd sshd_config-password.conf
echo "sshd-e2e: phase 1: password then code, sshd on 127.0.0.1:$port, PAM service $service"

if enroll_user "$u_pw"; then
    s_pw=$SECRET
    code=$(totp_now "$s_pw")
    login "$u_pw" "$(password_of "$u_pw")" "$code" -
    expect_login "right password and right code log in and run a command" ok 1 1
    login "$u_pw" "$(password_of "$u_pw")" "$code" -
    expect_login "the same code again (replay) is refused" denied 1 1
    told_used "the user is told the code was already used (keyboard-interactive)"
    login "$u_pw" "$(password_of "$u_pw")" "$(totp_wrong "$s_pw")" -
    expect_login "a wrong code is refused" denied 1 1
    login "$u_pw" "wrong-password" "$(totp_now "$s_pw")" -
    expect_login "a wrong password is refused before the code is asked" denied 1 0
fi

login "$u_new" "$(password_of "$u_new")" 000000 -
expect_login "not enrolled + nullok: the password alone logs in" ok 1 0

if enroll_user "$u_lan"; then
    s_lan=$SECRET
    login "$u_lan" "$(password_of "$u_lan")" "$(totp_wrong "$s_lan")" -
    expect_login "access rule '+ : $u_lan : 127.0.0.1' skips the code" ok 1 0
    login "$u_lan" "wrong-password" 000000 -
    expect_login "the access-rule skip still needs the password" denied 1 0
fi

if enroll_user "$u_grp"; then
    s_grp=$SECRET
    login "$u_grp" "$(password_of "$u_grp")" "$(totp_wrong "$s_grp")" -
    expect_login "skip_group member logs in without a code" ok 1 0
fi

# The snippet's exemptions, as a real sshd reads them: root keeps its keys (Debian's
# "PermitRootLogin prohibit-password" would otherwise lock root out), the automation
# group logs in with a key alone, and everybody else still answers the PAM stack.
check_root_keeps_keys() {
    local methods
    methods=$("$work/bin/$service" -T -f "$work/sshd_config" -C user=root,host=localhost,addr=127.0.0.1 \
        | sed -n 's/^authenticationmethods //p')
    if [ "$methods" = publickey ]; then pass "$1: root logs in with a key"
    else fail "$1: root logs in with a key (sshd -T says: $methods)"; fi
}
check_root_keeps_keys sshd_config-password.conf
root_logs_in_with_its_key() {
    login root unused 000000 "$key"
    expect_login "$1: root logs in with its key alone (Match User root)" ok 0 0
    login root unused 000000 -
    expect_login "$1: root without its key is asked nothing and refused" denied 0 0
}
root_logs_in_with_its_key sshd_config-password.conf
login "$u_auto" unused 000000 "$key"
expect_login "the automation group logs in with its key alone" ok 0 0
login "$u_pw" "$(password_of "$u_pw")" 000000 "$key"
expect_login "a key exempts nobody else from the password and the code" denied 1 1
# The control: without the snippet's "Match User root" block the same key no longer
# gets root in (Debian's prohibit-password refuses keyboard-interactive to root).
start_sshd sshd_config-password.conf '/^Match User root$/,+1d'
grep -q "Match User root" "$work/snippet.conf" && die "the control did not delete the root block"
login root unused 000000 "$key"
expect_login "without the Match User root block, root's key alone is refused" denied 1 0

# ==== Phase 2: public key, then code (sshd-publickey + sshd_config-publickey.conf)
install_pam sshd-publickey
start_sshd sshd_config-publickey.conf
echo "sshd-e2e: phase 2: publickey then code"
check_root_keeps_keys sshd_config-publickey.conf
root_logs_in_with_its_key sshd_config-publickey.conf
login "$u_auto" unused 000000 "$key"
expect_login "the automation group logs in with its key alone (publickey snippet)" ok 0 0
if enroll_user "$u_key"; then
    s_key=$SECRET
    code=$(totp_now "$s_key")
    login "$u_key" unused "$code" "$key"
    expect_login "public key, then the right code, logs in" ok 0 1
    login "$u_key" unused "$code" "$key"
    expect_login "public key, then the same code again (replay), is refused" denied 0 1
    told_used "after a key, the user is told the code was already used"
    login "$u_key" unused "$(totp_wrong "$s_key")" "$key"
    expect_login "public key, then a wrong code, is refused" denied 0 1
    login "$u_key" "$(password_of "$u_key")" "$(totp_now "$s_key")" -
    expect_login "without the key nothing is asked and nobody gets in" denied 0 0
fi

# ==== Phase 3: the module on an account line (a stack copied with the wrong type). sshd
# runs the account stack for every method, a key alone included; the line can ask for no
# code, so it fails, where it used to return PAM_IGNORE and let the key alone in.
install_pam sshd-publickey
printf 'account required %s\n' "$module_ref" >> "$pamfile"
start_sshd sshd_config-publickey.conf
echo "sshd-e2e: phase 3: pam_totp on an account line"
login "$u_auto" unused 000000 "$key"
expect_login "pam_totp on an account line refuses a key-only login instead of skipping the code" denied 0 0

stop_sshd
summary
