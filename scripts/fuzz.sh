#!/usr/bin/env bash
# Builds every cargo-fuzz target (fuzz/harness) and runs each briefly from
# the committed corpus (fuzz/corpus/<target>), the way CI does.
#
# Contract (scripts/test.sh calls this and prints the last line):
#   exit 0  every target built and ran clean;
#   exit 1  a build failed or a target crashed (or hung, or ran out of
#           memory): each crash input is copied to
#           fuzz/regressions/<target>/ (commit it with the fix: the stable
#           suite, `cargo test -p xvs-fuzz-targets`, replays it) and its
#           reproducer command printed;
#   exit 2  skipped: no nightly toolchain (cargo-fuzz needs one).
#   The last line of stdout is always a one-line summary starting `fuzz:`.
#
# Environment: FUZZ_SECONDS (per target, default 20), FUZZ_TARGETS (space
# separated, default every target).
#
# Each target runs on a copy of its corpus, so the inputs libFuzzer adds
# do not land in the repository; fuzz/README.md says how to grow the
# committed corpus deliberately.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: 0.13.1 builds with the stable toolchain here; --locked keeps its
# own dependencies from drifting.
CARGO_FUZZ_VERSION=0.13.1
FUZZ_DIR=fuzz/harness
SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped: no nightly toolchain: fuzz targets not built or run"
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    if ! cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"; then
        echo "fuzz: FAILED: could not install cargo-fuzz $CARGO_FUZZ_VERSION"
        exit 1
    fi
fi

started=$(date +%s)
# Address sanitizer (cargo-fuzz's default) with debug assertions (its
# default too): an overflow or an out-of-bounds access in unsafe code is a
# crash, not a silent wrong answer.
# The target directory is named so the binaries are where they are run
# from below, whatever CARGO_TARGET_DIR says.
if ! cargo +nightly fuzz build --fuzz-dir "$FUZZ_DIR" --target-dir "$FUZZ_DIR/target"; then
    echo "fuzz: FAILED: the fuzz targets do not build"
    exit 1
fi
built=$(($(date +%s) - started))

targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list --fuzz-dir "$FUZZ_DIR")}
bin_dir="$FUZZ_DIR/target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=()
for t in $targets; do
    mkdir -p "$work/$t"
    if [ -d "fuzz/corpus/$t" ]; then
        cp -r "fuzz/corpus/$t/." "$work/$t/"
    fi
    # Known crashes go in as inputs too: one still crashing fails here
    # (as it fails the test suite) instead of being found again.
    dirs=("$work/$t")
    if [ -d "fuzz/regressions/$t" ]; then
        dirs+=("fuzz/regressions/$t")
    fi
    artifacts="$work/$t.artifacts"
    mkdir -p "$artifacts"
    log="$work/$t.log"
    # The binary just built, not `cargo fuzz run`: that builds again
    # first, and would pick up whatever changed in the tree meanwhile.
    # ASAN_OPTIONS as cargo-fuzz sets it. -timeout: an input running this
    # long is a hang (a crash of its own); libFuzzer's default of 20
    # minutes would outlive the whole budget.
    if ASAN_OPTIONS=detect_odr_violation=0 "$bin_dir/$t" \
        -artifact_prefix="$artifacts/" -max_total_time="$SECONDS_PER_TARGET" \
        -timeout=10 -print_final_stats=1 "${dirs[@]}" >"$log" 2>&1; then
        runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo '?')
        echo "fuzz: $t: clean, $runs runs in ${SECONDS_PER_TARGET}s"
        continue
    fi
    saved=()
    for a in "$artifacts"/*; do
        [ -f "$a" ] || continue
        mkdir -p "fuzz/regressions/$t"
        cp "$a" "fuzz/regressions/$t/"
        saved+=("fuzz/regressions/$t/$(basename "$a")")
    done
    # The panic or sanitizer report and libFuzzer's verdict; the stack
    # trace is left out (the reproducer prints it again).
    echo "fuzz: $t: FAILED:"
    grep -E -A2 'panicked at|ERROR: (AddressSanitizer|libFuzzer)|^SUMMARY|Test unit written|executed_units' \
        "$log" | grep -v -E '^ *#[0-9]+ ' | head -n 30 | sed 's/^/    /' || true
    if [ ${#saved[@]} -eq 0 ]; then
        failed+=("$t (no crash input: see its log above)")
        continue
    fi
    for s in "${saved[@]}"; do
        echo "fuzz: $t: crash input saved as $s"
        echo "    reproduce: cargo +nightly fuzz run --fuzz-dir $FUZZ_DIR $t $s"
        echo "    or on stable: cargo test -p xvs-fuzz-targets --test replay"
    done
    failed+=("$t (${saved[*]})")
done

total=$(($(date +%s) - started))
n=$(echo "$targets" | wc -w)
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}; commit the saved inputs with the fix"
    exit 1
fi
echo "fuzz: $n targets clean, ${SECONDS_PER_TARGET}s each (build ${built}s, total ${total}s)"
