#!/usr/bin/env bash
# Size of libpam_totp.so, stripped, and where it comes from (docs/performance.md,
# issue 23). `cargo bloat` is not needed: the module is built once more with the
# `profiling` profile (the release settings, LTO included, with symbols kept; the shipped
# release profile is unchanged), and `nm --size-sort` attributes every function and
# constant to the crate its demangled path starts with. Sections without symbols
# (unwind tables, relocations, the dynamic symbol table) are listed by `size -A` on the
# stripped release build.
#
#   ./scripts/module-size.sh          # builds, then prints the tables
set -euo pipefail
cd "$(dirname "$0")/.."

# The same packages as `make bench`, so that feature unification gives the same module.
packages=(-p pam_totp -p pam_totp_redis -p totp-enroll -p totp-state -p pam-bench)
cargo build --release "${packages[@]}" >/dev/null 2>&1
cargo build --profile profiling -p pam_totp >/dev/null 2>&1
release=target/release/libpam_totp.so
symbols=target/profiling/libpam_totp.so
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
strip -o "$tmp" "$release"

echo "libpam_totp.so stripped: $(( $(stat -c %s "$tmp") / 1024 )) KiB"
echo
echo "sections (stripped release build), bytes:"
size -A "$tmp" | awk 'NR > 2 && $1 != "Total" && $2 > 1024 { printf "  %-22s %8d\n", $1, $2 }' | sort -k2 -nr
echo
echo "code and constants by crate (profiling build, same code), KiB:"
nm -C --size-sort -S "$symbols" | awk '
    NF >= 4 {
        size = 0
        hex = tolower($2)
        for (i = 1; i <= length(hex); i++) {
            size = size * 16 + index("0123456789abcdef", substr(hex, i, 1)) - 1
        }
        name = $4
        for (i = 5; i <= NF; i++) name = name " " $i
        # "<crate::T as other::Trait>::f" belongs to the type'"'"'s crate.
        sub(/^[<&]+/, "", name)
        sub(/^(mut |dyn )/, "", name)
        crate = name
        sub(/::.*/, "", crate)
        sub(/[^A-Za-z0-9_].*/, "", crate)
        if (crate == "") crate = "(other)"
        # std'"'"'s backtrace printer, linked through its default panic hook.
        if (crate ~ /^(gimli|addr2line|rustc_demangle|miniz_oxide|adler2?|object)$/) crate = crate " (std backtrace)"
        total[crate] += size
        all += size
    }
    END {
        for (c in total) if (total[c] >= 512) printf "%9.1f  %s\n", total[c] / 1024, c
        printf "%9.1f  %s\n", all / 1024, "(all symbols)"
    }' | sort -nr
