#!/usr/bin/env bash
# The product for real, without touching /etc/pam.d: build, enroll a throwaway secret,
# show its QR code, then authenticate through the real libpam against a temporary stack.
#   ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh --demo
echo "demo: building (release)..."
cargo build --release -q -p pam_totp -p totp-enroll

work=$(mktemp -d -t pam_totp-demo.XXXXXX)   # mode 0700, owned by you
trap 'rm -rf "$work"' EXIT
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
mkdir "$work/pam.d"
printf 'auth required %s secret=%s\n' "$module" "$secret" > "$work/pam.d/pam_totp-demo"
printf 'auth required pam_deny.so\n' > "$work/pam.d/other"

echo
echo "demo: now authenticating through libpam (service pam_totp-demo, user $user)."
echo "demo: enter the 6-digit code your app shows."
if ./target/release/totp-enroll check --pam-dir "$work/pam.d" --service pam_totp-demo --user "$user"; then
    echo "demo: authenticated. Try again with the same code: it is refused (replay)."
else
    echo "demo: authentication failed (wrong code, or the phone's clock is off)."
    exit 1
fi
