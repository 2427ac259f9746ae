#!/usr/bin/env bash
# Installs the .deb from packaging/build-deb.sh and checks the installed package:
# every file where it belongs (owner, mode), the man pages render, the module loads
# through libpam by its bare name pam_totp.so and verifies a real code, totp-enroll
# runs and enrolls, the pam-auth-update profile stays off by default and works when
# selected, and removing the package takes the profile out again. Also: lintian (no error
# or warning), Depends against the libraries the binaries link, the plugins pass the
# module's ownership check where it looks for them, the paths README and the man pages
# name, reinstalling keeps an edited conffile (and is not refused for a hand-written
# pam.d line), an upgrade runs totp-state audit for each service with a live line and
# names the accounts it refuses (a store below a group-writable directory) in a
# WARNING without failing, removal is refused while a hand-written live pam.d line
# names the module (and goes ahead once it is commented out), also one in a copy of common-auth that
# pam-auth-update never rewrites (common-auth-2fa), with the profile still enabled after
# the refusal, but not for a backup file (common-auth.bak: a warning), nor when dpkg
# removes it in favour of a conflicting package (a warning), nor when the scan of the
# PAM files prerm runs (/usr/share/pam_totp/live-pam-lines, byte-identical to
# packaging/live-pam-lines, which the RPM ships too) cannot run (refused then), and purge
# keeps the used-code records (deleting only empty directories).
#
#   sudo ./tests/e2e/deb-install.sh [path/to/pam-totp_*.deb]
#
# Default package: the newest target/debian/pam-totp_*.deb. Needs root, dpkg, oathtool,
# objdump, and lintian (skipped without it, except when CI=true).
# Leaves the machine as it found it: the package is purged again unless it was
# installed before (then this build stays installed), /etc/pam.d/common-* and
# /var/lib/pam are restored, /var/lib/pam_totp is deleted (a previous one put back), the
# test user and the test's pam.d files are deleted.
# Prints PASS/FAIL per case and "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=tests/e2e/lib.sh
. "$root/tests/e2e/lib.sh"

die() { echo "deb-install: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (dpkg, test users): sudo $0"
for tool in dpkg oathtool useradd man objdump; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh)"
done

deb=${1:-$(newest_deb "$root" || true)}
[ -n "$deb" ] && [ -f "$deb" ] || die "no package; build it first: ./packaging/build-deb.sh"
deb=$(readlink -f "$deb")
echo "deb-install: testing $deb"

secdir=$(pam_security_dir)
module=$secdir/pam_totp.so
user=ptdeb$(( $$ % 100000 ))
# Hand-written pam.d files for the removal refusal: one names the module, one only in a
# comment.
handfile=/etc/pam.d/$user-hand
commentfile=/etc/pam.d/$user-comment
# Copies of common-auth pam-auth-update never rewrites: one PAM can read (an @include
# target), one it never reads as a service (a backup).
copyfile=/etc/pam.d/common-auth-$user
bakfile=/etc/pam.d/common-auth.$user.bak
# Services for the audit an upgrade runs: store mode below a group-writable directory
# (as Debian's /var/local, root:staff 2775, holds a store), and the same with 0755.
upbad=/etc/pam.d/$user-upgrade-gw
upok=/etc/pam.d/$user-upgrade-ok
stores=/var/lib/$user-stores
work=$(mktemp -d "${TMPDIR:-/tmp}/pam_totp-debtest.XXXXXX")
backup=$work/backup
mkdir -p "$backup/pam.d" "$backup/varlibpam"
cp -a /etc/pam.d/common-* "$backup/pam.d/"
[ -d /var/lib/pam ] && cp -a /var/lib/pam/. "$backup/varlibpam/"
was_installed=no
dpkg-query -W -f='${Status}' pam-totp 2>/dev/null | grep -q "install ok installed" && was_installed=yes
# A /var/lib/pam_totp left by a source install (the module creates its state directory
# on first use) is moved aside, so the package's own directory and purge are what this
# test sees, and put back afterwards.
moved_varlib=no
if [ "$was_installed" = no ] && [ -e /var/lib/pam_totp ]; then
    mv /var/lib/pam_totp "$backup/varlib-pam_totp"
    moved_varlib=yes
fi

cleanup() {
    set +e
    userdel -r -f "$user" >/dev/null 2>&1
    rm -f "$handfile" "$commentfile" "$copyfile" "$bakfile" "$upbad" "$upok"
    rm -rf "$stores"
    # The scan put aside by the case that checks a removal without it: back, or the purge
    # below is refused.
    if [ -e "$work/live-pam-lines.aside" ]; then
        mv "$work/live-pam-lines.aside" /usr/share/pam_totp/live-pam-lines
    fi
    if [ "$was_installed" = no ] && dpkg-query -W pam-totp >/dev/null 2>&1; then
        dpkg --purge pam-totp >/dev/null 2>&1
    fi
    # Whatever happened above, /etc/pam.d/common-* and pam-auth-update's state go back
    # to what they were before this script.
    cp -a "$backup/pam.d/." /etc/pam.d/
    if [ -d /var/lib/pam ]; then
        rm -rf /var/lib/pam/*
        cp -a "$backup/varlibpam/." /var/lib/pam/
    fi
    # Purge keeps the records this test's logins wrote: they go with the test.
    if [ "$was_installed" = no ]; then
        rm -rf /var/lib/pam_totp
    fi
    if [ "$moved_varlib" = yes ]; then
        mv "$backup/varlib-pam_totp" /var/lib/pam_totp
    fi
    rm -rf "$work"
}
trap cleanup EXIT
# A signal ends the script through exit, so the EXIT trap cleans up.
trap 'exit 130' INT TERM HUP

common_sums() { (cd /etc/pam.d && md5sum common-*); }
sums_before=$(common_sums)
# Every pam.d file (a pam_google_authenticator.so line keeps working until the admin
# changes it: installing must not touch any of them).
all_pamd_sums() { (cd /etc/pam.d && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum); }
all_sums_before=$(all_pamd_sums)

# ---- lintian
if command -v lintian >/dev/null; then
    lintian "$deb" > "$work/lintian.log" 2>&1 || true
    if grep -qE '^[EW]: ' "$work/lintian.log"; then
        fail "lintian reports no error or warning: $(grep -E '^[EW]: ' "$work/lintian.log" | tr '\n' ' ')"
    else
        pass "lintian reports no error or warning (overrides: packaging/debian/lintian-overrides)"
    fi
elif [ "${CI:-}" = true ]; then
    fail "lintian not installed (scripts/install-deps.sh)"
else
    echo "note: lintian not installed; skipped"
fi

# The module makes /var/lib/pam_totp 0755 when it runs before the package is installed
# (a source install); dpkg keeps an existing directory's mode, postinst must not.
if [ "$was_installed" = no ]; then
    mkdir -m 0755 /var/lib/pam_totp
fi

# ---- install
if dpkg -i "$deb" > "$work/dpkg-i.log" 2>&1; then
    pass "dpkg -i installs the package"
else
    cat "$work/dpkg-i.log"
    fail "dpkg -i installs the package"
    summary
    exit 1
fi
version=$(dpkg-deb --field "$deb" Version)
check "dpkg reports version $version installed" \
    test "$(dpkg-query -W -f='${Version}' pam-totp)" = "$version"

# ---- files, owners, modes
# path  mode  (owner root:root for all)
expected=(
    "$module 644"
    "$(dirname "$secdir")/pam_totp/redis.so 644"
    "$(dirname "$secdir")/pam_totp/etcd.so 644"
    "/usr/bin/totp-enroll 755"
    "/usr/sbin/totp-state 755"
    "/usr/share/man/man8/totp-state.8.gz 644"
    "/var/lib/pam_totp/state 700"
    "/usr/share/man/man8/pam_totp.8.gz 644"
    "/usr/share/man/man1/totp-enroll.1.gz 644"
    "/usr/share/pam-configs/pam_totp 644"
    "/usr/share/pam_totp/live-pam-lines 755"
    "/usr/share/doc/pam-totp/README.md 644"
    "/usr/share/doc/pam-totp/SECURITY.md 644"
    "/usr/share/doc/pam-totp/copyright 644"
    "/usr/share/doc/pam-totp/changelog.Debian.gz 644"
    "/usr/share/doc/pam-totp/changelog.gz 644"
    "/usr/share/lintian/overrides/pam-totp 644"
    "/var/lib/pam_totp 700"
    "/etc/security/pam_totp_access.conf 644"
    "/etc/fail2ban/filter.d/pam-totp.conf 644"
)
for doc in "$root"/docs/*.md; do
    expected+=("/usr/share/doc/pam-totp/docs/$(basename "$doc") 644")
done
while IFS= read -r -d '' ex; do
    expected+=("/usr/share/doc/pam-totp/examples/${ex#"$root"/pam.d-examples/} 644")
done < <(find "$root/pam.d-examples" -type f -print0)
for entry in "${expected[@]}"; do
    path=${entry% *}
    mode=${entry##* }
    if [ -e "$path" ] && [ "$(stat -c '%a %U:%G' "$path")" = "$mode root:root" ]; then
        pass "installed: $path ($mode root:root)"
    else
        fail "installed: $path ($mode root:root); found: $(stat -c '%a %U:%G' "$path" 2>&1)"
    fi
    if [ "${path#/var/lib/pam_totp}" = "$path" ] && ! dpkg -L pam-totp | grep -qxF "$path"; then
        fail "dpkg -L pam-totp lists $path"
    fi
done
check "installed examples are byte-identical to pam.d-examples/" \
    diff -r "$root/pam.d-examples" /usr/share/doc/pam-totp/examples
check "profile in /usr/share/pam-configs matches the example" \
    cmp -s "$root/pam.d-examples/pam-configs/pam_totp" /usr/share/pam-configs/pam_totp
# The scan of the PAM files: the one file the RPM's %preun runs too, and prerm runs it
# instead of scanning itself (no directory or backup suffix of its own).
live=/usr/share/pam_totp/live-pam-lines
check "$live is byte-identical to packaging/live-pam-lines (the RPM ships the same file)" \
    cmp -s "$root/packaging/live-pam-lines" "$live"
check "prerm runs $live and scans nothing itself" \
    sh -c "grep -qx 'LIVE=$live' /var/lib/dpkg/info/pam-totp.prerm \
           && ! grep -qE '/usr/lib/pam\.d|rpmsave|grep -[A-Za-z]*n' /var/lib/dpkg/info/pam-totp.prerm"
check "dpkg --verify finds no changed files" test -z "$(dpkg --verify pam-totp 2>&1)"
check "installing changed no file in /etc/pam.d" test "$(all_pamd_sums)" = "$all_sums_before"

# Paths README's Install section and the man pages' FILES sections name are installed,
# and so are the /usr/lib/<triplet>/… paths README, the man pages and docs/ name.
doc_paths=$( { sed -n '/^## Install/,/^## [^I]/p' "$root/README.md" | grep -o '`/[^` ]*`' | tr -d '`'
    for page in "$root"/man/*.[18]; do
        sed -n '/^\.SH FILES/,/^\.SH /p' "$page" | sed -n 's/^\.IR\{0,1\} \(\/[^ ]*\).*/\1/p' | sed 's/\\-/-/g'
    done
    grep -ohE '/usr/lib/<triplet>/[A-Za-z0-9_./-]*' "$root"/man/*.[18] "$root"/docs/*.md "$root/README.md" \
        | sed "s|^/usr/lib/<triplet>/|/usr/lib/x86_64-linux-gnu/|"; } | sed 's/[.,;:)]*$//' | grep -v -e '[<~]' -e '^/var/lib/nfs/' -e '^/proc/' \
    | sed "s|/usr/lib/x86_64-linux-gnu/|$(dirname "$secdir")/|" | LC_ALL=C sort -u)
dpkg -L pam-totp > "$work/dpkg-L"
missing_docs=""
for p in $doc_paths; do
    grep -qxF "$p" "$work/dpkg-L" || missing_docs="$missing_docs $p"
done
check "dpkg -L lists every path README (Install) and the man pages (FILES) name:$missing_docs" \
    test -n "$doc_paths" -a -z "$missing_docs"

# Depends names the package of every library the installed binaries link (DT_NEEDED,
# resolved as the loader does).
depends=$(dpkg-query -W -f='${Depends}' pam-totp)
plugin_dir=$(dirname "$secdir")/pam_totp
missing_deps=""
for lib in $(for f in "$module" "$plugin_dir"/redis.so "$plugin_dir"/etcd.so /usr/bin/totp-enroll /usr/sbin/totp-state; do
        for so in $(objdump -p "$f" | awk '$1 == "NEEDED" {print $2}'); do
            ldd "$f" | awk -v so="$so" '$1 == so && $2 == "=>" && $3 ~ /^\// {print $3}'
        done
    done | LC_ALL=C sort -u); do
    owner=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(echo "$lib" | sed 's|^/usr/lib/|/lib/|;t;s|^/lib/|/usr/lib/|')" 2>/dev/null || true)
    owner=${owner%%:*}
    if [ -z "$owner" ] || ! printf '%s\n' "$depends" | tr ',' '\n' | grep -qE "^ *$owner( |\$)"; then
        missing_deps="$missing_deps $lib(${owner:-no package})"
    fi
done
check "Depends ($depends) names the package of every linked library:$missing_deps" test -z "$missing_deps"

# The plugins pass the module's own ownership check at the paths it looks for them by
# default: totp-state loads them like the module does, and then finds nobody listening
# (exit 2, unreachable). A refused or missing plugin exits 1.
for backend in redis etcd; do
    out=$(/usr/sbin/totp-state ping --options "state=$backend://127.0.0.1:1" 2>&1) && rc=0 || rc=$?
    check "the $backend plugin loads from its default path (ownership check passed): $out" \
        sh -c "[ $rc -eq 2 ] && ! printf '%s\n' \"\$1\" | grep -q 'plugin'" _ "$out"
done
check "the access-rule file and the fail2ban filter are conffiles" \
    sh -c "dpkg-query -W -f='\${Conffiles}' pam-totp | grep -q ' /etc/security/pam_totp_access.conf ' \
           && dpkg-query -W -f='\${Conffiles}' pam-totp | grep -q ' /etc/fail2ban/filter.d/pam-totp.conf '"
check "fail2ban-regex finds the host in a failed-code line with the installed filter" \
    sh -c "fail2ban-regex -r -o ip 'Dec  5 10:00:00 host sshd[42]: pam_totp(sshd:auth): invalid verification code for alice from 192.0.2.77' pam-totp | grep -qx 192.0.2.77"
check "the installed filter bans no host name (its owner chooses its addresses); control above" \
    sh -c "! fail2ban-regex -r -o ip 'Dec  5 10:00:00 host sshd[42]: pam_totp(sshd:auth): invalid verification code for alice from evil.example.org' pam-totp | grep -q ."
# The jail docs/logging.md gives, read by fail2ban itself next to the installed filter
# (in a copy of /etc/fail2ban): it bans on every port, not only SSH's.
if command -v fail2ban-client >/dev/null && [ -d /etc/fail2ban ]; then
    cp -a /etc/fail2ban "$work/fail2ban"
    sed -n '/^## fail2ban/,/^## /p' "$root/docs/logging.md" | sed -n '/^```ini/,/^```/p' | sed '1d;$d' \
        > "$work/fail2ban/jail.d/pam-totp.local"
    timeout 120 fail2ban-client -c "$work/fail2ban" -d > "$work/f2b-dump" 2>&1 || true
    check "fail2ban reads the documented jail with the installed filter and bans on all ports" \
        sh -c "grep -qF \"['add', 'pam-totp', 'systemd']\" '$work/f2b-dump' \
               && grep -F \"['set', 'pam-totp', 'addaction', \" '$work/f2b-dump' | grep -q 'allports' \
               && grep -F \"['multi-set', 'pam-totp', 'action', \" '$work/f2b-dump' | grep -qF \"['port', '0:65535']\""
    # Lines a local user sends with logger carry their uid: only root's count; and a
    # host name is never resolved into an address to ban.
    check "the documented jail counts journal lines of root's processes only and resolves no names" \
        sh -c "grep -qF \"['set', 'pam-totp', 'addjournalmatch', 'SYSLOG_FACILITY=10', '_UID=0']\" '$work/f2b-dump' \
               && grep -qF \"['set', 'pam-totp', 'usedns', 'no']\" '$work/f2b-dump'"
elif [ "${CI:-}" = true ]; then
    fail "fail2ban-client and /etc/fail2ban present, to read the documented jail (scripts/install-deps.sh)"
else
    echo "note: fail2ban-client or /etc/fail2ban missing; the documented jail was not read"
fi

# ---- man pages
for page in /usr/share/man/man8/pam_totp.8.gz /usr/share/man/man1/totp-enroll.1.gz /usr/share/man/man8/totp-state.8.gz; do
    name=$(basename "$page" | sed 's/\.[0-9]\.gz$//')
    if out=$(MANWIDTH=80 man -l "$page" 2>"$work/man.err") \
        && grep -q '^NAME' <<<"$out" \
        && grep -q "$name" <<<"$out"; then
        pass "man -l renders $page"
    else
        fail "man -l renders $page: $(head -n 5 "$work/man.err")"
    fi
    if [ -s "$work/man.err" ]; then
        echo "note: man -l $page printed warnings:"; sed 's/^/    /' "$work/man.err"
    fi
done

# ---- the module: dynamic linking and exports
check "ldd: every library of pam_totp.so resolves" \
    sh -c "ldd '$module' | grep -q 'not found' && exit 1 || exit 0"
check "pam_totp.so exports pam_sm_authenticate and pam_sm_setcred" \
    sh -c "nm -D --defined-only '$module' | grep -q ' T pam_sm_authenticate\$' \
           && nm -D --defined-only '$module' | grep -q ' T pam_sm_setcred\$'"

# ---- totp-enroll
check "totp-enroll --help works" sh -c '/usr/bin/totp-enroll --help | grep -qi usage'
check "totp-enroll --version names $(workspace_version "$root")" \
    sh -c "/usr/bin/totp-enroll --version | grep -qF '$(workspace_version "$root")'"

# ---- the module through libpam, named the way pam.d files name it
driver=$root/target/release/pam-drive
if [ ! -x "$driver" ]; then
    cargo build --release -q -p pamapp
fi
useradd -m -s /bin/sh -K UMASK=077 "$user"
echo "$user:deb-install-pw-1" | chpasswd
confdir=$work/pam.d
mkdir -p "$confdir"
echo "auth required pam_deny.so" > "$confdir/other"
printf 'auth required pam_totp.so nullok\nauth required pam_permit.so\n' > "$confdir/plain"
printf 'auth required pam_totp.so no_such_option\n' > "$confdir/badopt"
# The sshd example's module line, with the access file the package installs.
grep -E '^auth .*pam_totp\.so' "$root/pam.d-examples/sshd" > "$confdir/sshd-example"
echo 'auth required pam_permit.so' >> "$confdir/sshd-example"
drive() { "$driver" --confdir "$confdir" "$@" || true; }

out=$(drive --service plain --user "$user" --tty ssh --rhost 192.0.2.1)
check "pam_totp.so (bare name) loads: not enrolled + nullok -> skip, pam_permit succeeds" \
    sh -c "printf '%s\n' \"\$1\" | grep -qx 'result PAM_SUCCESS' && printf '%s\n' \"\$1\" | grep -qx 'prompts 0'" _ "$out"
out=$(drive --service sshd-example --user "$user" --tty ssh --rhost 192.0.2.1)
check "the sshd example's accessfile= exists as installed: not enrolled + nullok -> skip" \
    sh -c "printf '%s\n' \"\$1\" | grep -qx 'result PAM_SUCCESS'" _ "$out"
out=$(drive --service badopt --user "$user")
check "an unknown module option fails closed (PAM_SERVICE_ERR, no prompt)" \
    sh -c "printf '%s\n' \"\$1\" | grep -qx 'result PAM_SERVICE_ERR' && printf '%s\n' \"\$1\" | grep -qx 'prompts 0'" _ "$out"

if /usr/bin/totp-enroll --user "$user" --time-based --disallow-reuse --minimal-window \
        --no-rate-limit --force --no-confirm --quiet --non-interactive \
        > "$work/enroll.log" 2>&1; then
    pass "installed totp-enroll enrolls $user non-interactively"
else
    fail "installed totp-enroll enrolls $user non-interactively: $(tail -n 3 "$work/enroll.log")"
fi
home=$(getent passwd "$user" | cut -d: -f6)
secret_file=$home/.google_authenticator
check "the secret file is owned by $user, not readable by others" \
    sh -c "[ \"\$(stat -c '%U %a' '$secret_file' 2>/dev/null)\" = '$user 400' ] || [ \"\$(stat -c '%U %a' '$secret_file' 2>/dev/null)\" = '$user 600' ]"
if [ -f "$secret_file" ]; then
    secret=$(secret_of "$secret_file")
    # The file carries a DISALLOW_REUSE line (--disallow-reuse); on a local file system
    # (shared_file=auto) logins leave it as it is: the state store refuses the replay.
    sum_before=$(md5sum < "$secret_file")
    out=$(drive --service plain --user "$user" --tty ssh --rhost 192.0.2.1 --answer "$(totp_wrong "$secret")")
    check "installed module denies a wrong code" \
        sh -c "printf '%s\n' \"\$1\" | grep -qx 'result PAM_AUTH_ERR'" _ "$out"
    out=$(drive --service plain --user "$user" --tty ssh --rhost 192.0.2.1 --answer "$(totp_now "$secret")")
    check "installed module accepts the oathtool code for the totp-enroll secret" \
        sh -c "printf '%s\n' \"\$1\" | grep -qx 'result PAM_SUCCESS' && printf '%s\n' \"\$1\" | grep -qx 'prompts 1'" _ "$out"
    check "the logins left the secret file on a local file system as it was (DISALLOW_REUSE line included) and a record in the state directory" \
        sh -c "[ \"\$(md5sum < '$secret_file')\" = '$sum_before' ] && grep -q '^\" DISALLOW_REUSE\$' '$secret_file' && [ -f '/var/lib/pam_totp/state/$(id -u "$user")' ]"
    check "installed totp-state shows the accepted code as the replay mark" \
        sh -c "/usr/sbin/totp-state show --user '$user' --json | grep -q '\"last_step\":[0-9]'"
    # A wrong code after the success: the reset lifts its failure and keeps the replay
    # mark (what was used stays used).
    drive --service plain --user "$user" --tty ssh --rhost 192.0.2.1 --answer "$(totp_wrong "$secret")" >/dev/null
    check "installed totp-state reset lifts the failures and keeps the replay mark" \
        sh -c "/usr/sbin/totp-state show --user '$user' --json | grep -q '\"consecutive_failures\":1' && /usr/sbin/totp-state reset --user '$user' >/dev/null && /usr/sbin/totp-state show --user '$user' --json | grep -q '\"consecutive_failures\":0' && /usr/sbin/totp-state show --user '$user' --json | grep -q '\"last_step\":[0-9]'"
fi

# ---- pam-auth-update: off by default, works when selected, removed with the package
check "installing did not change /etc/pam.d/common-*" test "$(common_sums)" = "$sums_before"
check "profile is not enabled by default" sh -c '[ -f /etc/pam.d/common-auth ] && ! grep -q pam_totp /etc/pam.d/common-auth'
if command -v pam-auth-update >/dev/null; then
    pam-auth-update --package >/dev/null 2>&1 || true
    check "pam-auth-update --package does not enable it either" \
        sh -c '[ -f /etc/pam.d/common-auth ] && ! grep -q pam_totp /etc/pam.d/common-auth'
    if pam-auth-update --enable pam_totp >/dev/null 2>&1 \
        && grep -q '^auth.*pam_totp\.so nullok' /etc/pam.d/common-auth; then
        pass "pam-auth-update --enable pam_totp adds the line to common-auth"
        # The generated common-auth, run for real: password, then code.
        cp /etc/pam.d/common-auth "$confdir/common-auth"
        echo "@include $confdir/common-auth" > "$confdir/viaprofile"
        # The code above used this time step (replay protection): enroll afresh.
        /usr/bin/totp-enroll --user "$user" --time-based --disallow-reuse --minimal-window \
            --no-rate-limit --force --no-confirm --quiet --non-interactive >/dev/null 2>&1 || true
        secret=$(secret_of "$secret_file" 2>/dev/null || echo AAAA)
        out=$(drive --service viaprofile --user "$user" --tty tty1 \
            --answer deb-install-pw-1 --answer "$(totp_now "$secret")")
        check "generated common-auth: password then code succeeds" \
            sh -c "printf '%s\n' \"\$1\" | grep -qx 'result PAM_SUCCESS' && printf '%s\n' \"\$1\" | grep -qx 'prompts 2'" _ "$out"
        out=$(drive --service viaprofile --user "$user" --tty tty1 \
            --answer deb-install-pw-1 --answer "$(totp_wrong "$secret")")
        check "generated common-auth: wrong code fails" \
            sh -c "printf '%s\n' \"\$1\" | grep -qx 'result PAM_AUTH_ERR'" _ "$out"
        out=$(drive --service viaprofile --user root --tty tty1 --answer wrong-root-pw)
        check "generated common-auth: a wrong password never reaches the code" \
            sh -c "printf '%s\n' \"\$1\" | grep -qx 'result PAM_AUTH_ERR' && printf '%s\n' \"\$1\" | grep -qx 'prompts 1'" _ "$out"
        pam-auth-update --disable pam_totp >/dev/null 2>&1 || true
        check "pam-auth-update --disable pam_totp restores common-*" \
            test "$(common_sums)" = "$sums_before"
    else
        fail "pam-auth-update --enable pam_totp adds the line to common-auth"
    fi
    # Selected again, then the package removed: prerm must take the line out.
    pam-auth-update --enable pam_totp >/dev/null 2>&1 || true
elif [ "${CI:-}" = true ]; then
    fail "pam-auth-update present (libpam-runtime), to test the profile"
else
    echo "note: pam-auth-update missing; the profile was not tested"
fi

# ---- reinstall (the same version again, as an upgrade runs it)
# (Only on a host where this test installed the package: the conffile edit is ours.)
# A hand-written live pam_totp.so line is there: an upgrade is never refused for it.
if [ "$was_installed" = no ]; then
    echo "# edited by deb-install" >> /etc/security/pam_totp_access.conf
    printf 'auth required pam_unix.so\nauth required pam_totp.so nullok\n' > "$handfile"
    if dpkg -i "$deb" > "$work/dpkg-i2.log" 2>&1; then
        pass "dpkg -i installs the package again over itself (a hand-written pam_totp.so line does not stop an upgrade)"
    else
        cat "$work/dpkg-i2.log"; fail "dpkg -i installs the package again over itself (a hand-written pam_totp.so line does not stop an upgrade)"
    fi
    check "reinstalling kept the edited conffile" \
        grep -qx '# edited by deb-install' /etc/security/pam_totp_access.conf
    check "reinstalling kept the user's state record and the root-only modes" \
        sh -c "[ -f '/var/lib/pam_totp/state/$(id -u "$user")' ] \
               && [ \"\$(stat -c %a /var/lib/pam_totp /var/lib/pam_totp/state | tr '\n' ' ')\" = '700 700 ' ]"
    if command -v pam-auth-update >/dev/null; then
        check "reinstalling kept the selected profile's line in common-auth" \
            grep -q '^auth.*pam_totp\.so' /etc/pam.d/common-auth
    fi

    # ---- an upgrade audits the services that use the module (postinst configure OLD)
    # A store below a directory its group may write, as a site with
    # secret=/var/local/totp/${USER} has it (Debian's /var/local is root:staff 2775):
    # this release refuses it, so the upgrade names it with a WARNING and still succeeds.
    # The control: the same store with 0755 directories, audited in the same runs.
    mkdir -m 0755 "$stores" "$stores/ok"
    mkdir "$stores/local"
    chgrp staff "$stores/local" 2>/dev/null || true
    chmod 2775 "$stores/local"
    mkdir -m 0700 "$stores/local/totp"
    printf 'auth required pam_totp.so user=root secret=%s/${USER}\n' "$stores/ok" > "$upok"
    if dpkg -i "$deb" > "$work/dpkg-i-upok.log" 2>&1; then
        pass "an upgrade with a store in 0755 directories succeeds"
    else
        cat "$work/dpkg-i-upok.log"; fail "an upgrade with a store in 0755 directories succeeds"
    fi
    check "an upgrade audits a service with a store in 0755 directories: no warning for it, named as clean" \
        sh -c "grep -q 'pam-totp: audit after the upgrade: no account refused (PAM services:.* $user-upgrade-ok' '$work/dpkg-i-upok.log' \
               && ! grep -q 'WARNING.*$user-upgrade-ok' '$work/dpkg-i-upok.log' && ! grep -qF '$stores' '$work/dpkg-i-upok.log'"
    printf 'auth required pam_totp.so nullok user=root secret=%s/${USER}\n' "$stores/local/totp" > "$upbad"
    if dpkg -i "$deb" > "$work/dpkg-i-upbad.log" 2>&1; then
        pass "an upgrade with a store below a group-writable directory is not failed"
    else
        cat "$work/dpkg-i-upbad.log"; fail "an upgrade with a store below a group-writable directory is not failed"
    fi
    check "dpkg reports the package installed after that upgrade" \
        test "$(dpkg-query -W -f='${db:Status-Status}' pam-totp)" = installed
    check "that upgrade prints a WARNING naming the service, root's refusal and the group-writable directory" \
        sh -c "grep -q 'pam-totp: WARNING: after this upgrade pam_totp refuses these accounts' '$work/dpkg-i-upbad.log' \
               && grep -q 'pam-totp: WARNING: $user-upgrade-gw;' '$work/dpkg-i-upbad.log' \
               && grep -qF 'pam-totp:     root: refused: $stores/local/totp/root: directory $stores/local is owned by uid 0 with mode 2775' '$work/dpkg-i-upbad.log' \
               && grep -qF 'totp-state audit --service $user-upgrade-gw' '$work/dpkg-i-upbad.log'"
    check "that upgrade still names the 0755 store's service as clean, and only the other one in a warning" \
        sh -c "grep -q 'pam-totp: audit after the upgrade: no account refused (PAM services:.* $user-upgrade-ok' '$work/dpkg-i-upbad.log' \
               && ! grep -qF '$stores/ok' '$work/dpkg-i-upbad.log'"
    rm -f "$upbad" "$upok"
fi

# ---- removal
if [ "$was_installed" = no ]; then
    # The profile's own line is in common-auth (selected above); a hand-written live line
    # in $handfile and one only in a comment in $commentfile.
    printf 'auth required pam_unix.so\nauth required pam_totp.so nullok\n' > "$handfile"
    printf 'auth required pam_unix.so\n# auth required pam_totp.so nullok\n' > "$commentfile"
    # The package, the module and the profile's line in common-auth, all as they were.
    # (The package's state; its selection is "deinstall" after the attempt.)
    still_there() {
        [ "$(dpkg-query -W -f='${db:Status-Status}' pam-totp 2>/dev/null)" = installed ] \
            && [ -e "$module" ] && grep -q '^auth.*pam_totp\.so' /etc/pam.d/common-auth
    }
    if dpkg -r pam-totp > "$work/dpkg-r-refused.log" 2>&1; then
        fail "dpkg -r is refused while a hand-written pam.d line uses pam_totp.so"
    else
        pass "dpkg -r is refused while a hand-written pam.d line uses pam_totp.so"
    fi
    check "the refusal names the file and line, and what to do" \
        sh -c "grep -q 'NOT removing' '$work/dpkg-r-refused.log' \
               && grep -qF 'pam-totp:     $handfile:2:auth required pam_totp.so nullok' '$work/dpkg-r-refused.log' \
               && grep -q 'comment them out' '$work/dpkg-r-refused.log'"
    check "the refusal names neither the commented-out line nor the profile's own line in common-auth" \
        sh -c "! grep -qF '$commentfile' '$work/dpkg-r-refused.log' && ! grep -qF 'common-auth' '$work/dpkg-r-refused.log'"
    check "after the refused dpkg -r the package, the module and the profile's line are all still there" \
        still_there
    if command -v apt-get >/dev/null; then
        if apt-get -y remove pam-totp > "$work/apt-remove.log" 2>&1; then
            fail "apt-get remove is refused too"
        else
            check "apt-get remove is refused too, naming the line" grep -qF "$handfile:2:" "$work/apt-remove.log"
            check "after the refused apt-get remove the package, module and profile line are still there" \
                still_there
        fi
    elif [ "${CI:-}" = true ]; then
        fail "apt-get present, to show it refused too"
    fi
    profile_enabled() {
        grep -qx 'Module: pam_totp' /var/lib/pam/auth \
            && grep -q '^auth.*pam_totp\.so' /etc/pam.d/common-auth
    }
    # $1 lines naming the module in common-auth.
    common_auth_lines() { [ "$(grep -c '^auth.*pam_totp\.so' /etc/pam.d/common-auth)" -eq "$1" ]; }
    # dpkg removing it in favour of a conflicting package: warned, never refused (the apt
    # run would stop half-way). The prerm as dpkg calls it then; the profile goes as in
    # any removal, and is selected again for the cases below.
    prerm=/var/lib/dpkg/info/pam-totp.prerm
    if "$prerm" remove in-favour pam-totp-ng 9.9 > "$work/prerm-in-favour.log" 2>&1; then
        check "prerm remove in-favour warns, naming the line and the package, and does not refuse" \
            sh -c "grep -q 'WARNING: removing pam-totp in favour of pam-totp-ng' '$work/prerm-in-favour.log' \
                   && grep -qF '$handfile:2:auth required pam_totp.so nullok' '$work/prerm-in-favour.log' \
                   && ! grep -q 'NOT removing' '$work/prerm-in-favour.log'"
    else
        cat "$work/prerm-in-favour.log"; fail "prerm remove in-favour warns and does not refuse"
    fi
    pam-auth-update --enable pam_totp >/dev/null 2>&1 || true
    # From here the hand-written line is commented out.
    sed -i 's/^auth required pam_totp/# auth required pam_totp/' "$handfile"
    # A copy of common-auth under a name pam-auth-update does not manage keeps the
    # profile's line after the removal took it out of common-auth: refused before the
    # profile is touched. A backup copy is only named.
    cp /etc/pam.d/common-auth "$copyfile"
    cp /etc/pam.d/common-auth "$bakfile"
    if dpkg -r pam-totp > "$work/dpkg-r-copy.log" 2>&1; then
        fail "dpkg -r is refused while a copy of common-auth ($copyfile) has the profile's line"
    else
        check "dpkg -r is refused while a copy of common-auth ($copyfile) has the profile's line, naming it" \
            sh -c "grep -q 'NOT removing' '$work/dpkg-r-copy.log' && grep -qF 'pam-totp:     $copyfile:' '$work/dpkg-r-copy.log'"
    fi
    check "the backup copy ($bakfile) is named in a warning, not in the refusal" \
        sh -c "grep -q 'warning: backup files' '$work/dpkg-r-copy.log' \
               && [ \"\$(grep -cF '$bakfile:' '$work/dpkg-r-copy.log')\" -eq 1 ]"
    check "after the refusal the package and module are there and the profile still enabled (TOTP still asked through common-auth)" \
        eval 'still_there && profile_enabled && common_auth_lines 1'
    rm -f "$copyfile"
    # A copy of the profile's line above pam-auth-update's block in common-auth: the removal
    # takes the block's line out and leaves this one, so prerm refuses after
    # pam-auth-update ran; postinst abort-remove must select the profile again.
    line=$(grep -m1 '^auth.*pam_totp\.so' /etc/pam.d/common-auth || true)
    if [ -z "$line" ]; then
        fail "the profile's line is in common-auth before the abort-remove case"
        pam-auth-update --enable pam_totp >/dev/null 2>&1 || true
    else
        sed -i "1i $line" /etc/pam.d/common-auth
        if dpkg -r pam-totp > "$work/dpkg-r-above.log" 2>&1; then
            fail "dpkg -r is refused while common-auth has the profile's line outside pam-auth-update's block"
        else
            pass "dpkg -r is refused while common-auth has the profile's line outside pam-auth-update's block"
        fi
        check "abort-remove selected the profile again: its line back in the block (2 lines), the package installed" \
            eval 'still_there && profile_enabled && common_auth_lines 2'
        sed -i 1d /etc/pam.d/common-auth
    fi
    # The scan cannot run (its file gone): refused, the profile untouched, though no
    # live line is left; the removal below is the control.
    mv "$live" "$work/live-pam-lines.aside"
    if dpkg -r pam-totp > "$work/dpkg-r-noscan.log" 2>&1; then
        fail "dpkg -r is refused when $live cannot run"
    else
        check "dpkg -r is refused when $live cannot run, saying so" \
            sh -c "grep -q 'NOT removing pam-totp' '$work/dpkg-r-noscan.log' \
                   && grep -q 'could not check the PAM files' '$work/dpkg-r-noscan.log'"
    fi
    mv "$work/live-pam-lines.aside" "$live"
    check "after that refusal the package and module are there and the profile still enabled" \
        eval 'still_there && profile_enabled && common_auth_lines 1'
    # The control: no live line left outside the profile (the backup copy stays), and
    # removal goes ahead.
    if dpkg -r pam-totp > "$work/dpkg-r.log" 2>&1; then
        pass "dpkg -r removes the package once the hand-written line is commented out and the copy is gone"
    else
        cat "$work/dpkg-r.log"; fail "dpkg -r removes the package once the hand-written line is commented out and the copy is gone"
    fi
    check "the removal warned about the backup copy" grep -qF "$bakfile:" "$work/dpkg-r.log"
    rm -f "$handfile" "$commentfile" "$bakfile"
    check "removal took the profile out of common-auth" \
        sh -c '[ -f /etc/pam.d/common-auth ] && ! grep -q pam_totp /etc/pam.d/common-auth'
    check "module and tool are gone after removal" \
        sh -c "[ ! -e '$module' ] && [ ! -e /usr/bin/totp-enroll ]"
    # Purge keeps the records of used codes (a reinstall must not re-admit them) and
    # says so; it deletes the conffiles and directories that are empty.
    dpkg --purge pam-totp > "$work/dpkg-purge.log" 2>&1 || true
    check "purge keeps the user's used-code record and the store key" \
        test -f "/var/lib/pam_totp/state/$(id -u "$user")" -a -f /var/lib/pam_totp/state/store.key
    check "purge names what it kept and the command that deletes it" \
        sh -c "grep -q 'kept /var/lib/pam_totp' '$work/dpkg-purge.log' \
               && grep -q 'rm -r /var/lib/pam_totp/state' '$work/dpkg-purge.log'"
    check "purge removes the conffiles" \
        test ! -e /etc/security/pam_totp_access.conf -a ! -e /etc/fail2ban/filter.d/pam-totp.conf
    rm -rf /var/lib/pam_totp
    dpkg -i "$deb" >/dev/null 2>&1 || true
    dpkg --purge pam-totp > "$work/dpkg-purge2.log" 2>&1 || true
    check "purge without any record removes /var/lib/pam_totp and says nothing about it" \
        sh -c "[ ! -e /var/lib/pam_totp ] && ! grep -q 'kept' '$work/dpkg-purge2.log'"
else
    pam-auth-update --disable pam_totp >/dev/null 2>&1 || true
    echo "note: pam-totp was installed before this test; this build stays installed"
fi

summary
