#!/usr/bin/env bash
# The product for real, without touching /etc/pam.d: build, enroll a throwaway secret,
# show its QR code, then authenticate through the real libpam against a temporary stack.
#   ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh --demo
# A toolchain install-deps.sh installed with rustup is in ~/.cargo/bin.
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
echo "demo: building (release)..."
cargo build --release -q -p pam_totp -p totp-enroll

# Mode 0700, owned by you, and not below /tmp: the module refuses a state directory
# below a directory anyone can write (anyone could create it first).
if [ "$(id -u)" -eq 0 ]; then base=/run; else base=$HOME; fi
work=$(mktemp -d "$base/pam_totp-demo.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' HUP INT TERM
secret=$work/google_authenticator
user=$(id -un)
module=$PWD/target/release/libpam_totp.so

echo
echo "demo: enrolling a throwaway secret for $user in $secret"
echo "demo: scan the QR code with your authenticator app (or type the secret key)."
echo
# Time-based, replay refused, 3-code window, no RATE_LIMIT (pam_totp throttles anyway),
# no confirmation: the PAM check below is the confirmation.
./target/release/totp-enroll --time-based --disallow-reuse --minimal-window \
    --no-rate-limit --no-confirm --force --non-interactive --qr-mode UTF8 \
    --label "$user@pam_totp-demo" --issuer "pam_totp demo" --secret "$secret"

# A throwaway PAM stack: only our module, reading the throwaway secret.
# Its replay mark and throttling go to a throwaway state directory too, so the demo
# leaves nothing behind.
# PAM splits a line at blanks: the module's path cannot hold one, and the paths in its
# arguments are written in PAM's brackets ([secret=...], passed to the module without
# them), which keep blanks but end at a "]".
case $module in
    *[[:space:]]*) echo "demo: PAM cannot load a module from a path with a blank ($module): use a checkout whose path has none" >&2; exit 1 ;;
esac
case $work in
    *[]]*|*[[:cntrl:]]*) echo "demo: the working directory's path ($work) cannot be written in a PAM line (a \"]\" or a control character): run the demo with HOME set to another directory" >&2; exit 1 ;;
esac
mkdir "$work/pam.d"
mkdir -m 700 "$work/state"
printf 'auth required %s [secret=%s] [state_dir=%s]\n' "$module" "$secret" "$work/state" \
    > "$work/pam.d/pam_totp-demo"
printf 'auth required pam_deny.so\n' > "$work/pam.d/other"

echo
echo "demo: now authenticating through libpam (service pam_totp-demo, user $user)."
echo "demo: enter the 6-digit code your app shows."
# The messages are shown and kept, so the second check can tell a replay from another
# refusal (totp-enroll check prints the module's messages on stderr).
check() {
    ./target/release/totp-enroll check --pam-dir "$work/pam.d" --service pam_totp-demo --user "$user" \
        2>&1 | tee "$work/check.log"
    return "${PIPESTATUS[0]}"
}
if check; then
    echo "demo: authenticated."
else
    echo "demo: authentication failed (wrong code, or the phone's clock is off)."
    exit 1
fi
echo
echo "demo: now enter the SAME code again: a code is good for one login only."
if check; then
    echo "demo: the same code was accepted twice; this must not happen."
    exit 1
elif grep -q 'already used' "$work/check.log"; then
    echo "demo: refused, as it should be (replay protection)."
else
    echo "demo: refused, but not as a replay (see the messages above; a mistyped code?)."
    echo "demo: run the demo again to see a used code refused."
    exit 1
fi
