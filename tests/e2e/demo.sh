#!/usr/bin/env bash
# Runs the README's first command (scripts/demo.sh) the way a person would, with expect
# playing the person: it reads the secret key the demo shows next to the QR code, computes
# the code with oathtool (the phone's part) and types it at the PAM prompt. Then it checks
# the demo's promise that the same code is refused a second time is kept, and that a
# wrong second code is not reported as a replay.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
. tests/e2e/lib.sh

log=$(mktemp -t pam_totp-demo-e2e.XXXXXX)
# The demo's working directory: /run for root, the home directory otherwise.
if [ "$(id -u)" -eq 0 ]; then demo_base=/run; else demo_base=$HOME; fi
leftovers() { find "$demo_base" -maxdepth 1 -name 'pam_totp-demo.*' 2>/dev/null | sort; }
before=$(leftovers)
trap 'rm -f "$log"' EXIT

# The right code: the demo must say "authenticated".
if expect -f - "$root/scripts/demo.sh" >"$log" 2>&1 <<'EXP'
set timeout 300
spawn {*}$argv
# Up to the line's end: output arrives in chunks, and a pattern that could stop inside
# the key would take a prefix of it when a chunk ends there (a wrong code, now and then).
expect {
    -re {Your new secret key is: ([A-Z2-7]+)\r?\n} { set secret $expect_out(1,string) }
    timeout { puts "no secret shown"; exit 2 }
}
expect {
    -re {Verification code: } {}
    timeout { puts "no PAM prompt"; exit 3 }
}
set code [exec oathtool --totp -b $secret]
send "$code\r"
expect {
    "demo: authenticated" {}
    "authentication failed" { exit 4 }
    timeout { exit 5 }
    eof { exit 6 }
}
expect {
    -re {Verification code: } {}
    timeout { exit 7 }
}
send "$code\r"
expect {
    "refused, as it should be" { expect eof; exit 0 }
    "accepted twice" { exit 8 }
    timeout { exit 9 }
}
EXP
then
    pass "demo enrolls, shows the QR code, authenticates with a right code and refuses its replay"
else
    fail "demo with a right code (see below)"
    cat "$log"
fi
# Half blocks with a UTF-8 locale, background colours without one (totp-enroll(1)).
grep -q $'▀\\|▄\\|█\\|\e\\[107m' "$log" && pass "demo shows a QR code" || fail "demo shows no QR code"

# A wrong code: the demo must report the failure and exit non-zero.
if expect -f - "$root/scripts/demo.sh" >"$log" 2>&1 <<'EXP'
set timeout 300
spawn {*}$argv
expect {
    -re {Verification code: } {}
    timeout { exit 3 }
}
send "000000\r"
expect {
    "authentication failed" { expect eof; exit 0 }
    "demo: authenticated" { exit 4 }
    timeout { exit 5 }
}
EXP
then
    pass "demo refuses a wrong code"
else
    fail "demo with a wrong code"
    cat "$log"
fi
# A right code, then a wrong one: refused, but the demo must not claim replay protection
# (the case above, with the same code twice, is the control).
if expect -f - "$root/scripts/demo.sh" >"$log" 2>&1 <<'EXP'
set timeout 300
spawn {*}$argv
expect {
    -re {Your new secret key is: ([A-Z2-7]+)\r?\n} { set secret $expect_out(1,string) }
    timeout { exit 2 }
}
expect {
    -re {Verification code: } {}
    timeout { exit 3 }
}
set code [exec oathtool --totp -b $secret]
send "$code\r"
expect {
    "demo: authenticated" {}
    timeout { exit 5 }
    eof { exit 6 }
}
expect {
    -re {Verification code: } {}
    timeout { exit 7 }
}
# Not any code of the window around now: all digits of the right one shifted by 5.
send "[string map {0 5 1 6 2 7 3 8 4 9 5 0 6 1 7 2 8 3 9 4} $code]\r"
expect {
    "refused, but not as a replay" { expect eof; exit 0 }
    "refused, as it should be" { exit 8 }
    timeout { exit 9 }
}
EXP
then
    pass "demo does not call a wrong second code a replay"
else
    fail "demo with a right, then a wrong code (see below)"
    cat "$log"
fi
[ "$(leftovers)" = "$before" ] && pass "demo removes its temporary directory" \
    || fail "demo left a temporary directory behind"
summary
