#!/usr/bin/env bash
# test.sh — the whole test suite, from a fresh Debian 12 machine:
#   1. installs the Debian packages it needs (scripts/deps.sh)
#   2. builds with AddressSanitizer + UndefinedBehaviorSanitizer and runs the
#      unit tests (Check) there
#   3. builds normally and runs every integration test (real PostgreSQL 15
#      clusters with pglogical, started on loopback by the tests themselves),
#      one after the other; a suite that skips (exit 77: this machine cannot
#      run it) counts as a failure here, since this script promises every test
# The last line is "total: N passed, N failed".
# The same suites one by one, with meson's timeout:
#   meson test -C build --suite integration [test_daemon ...]
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh || exit 1

passed=0
failed=0
failures=()

# add the counts of a "N passed, N failed" line in a log
count_from() {
    local line
    line=$(grep -E '^([a-z]+: )?[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
    if [[ -z "$line" ]]; then
        return 1
    fi
    passed=$((passed + $(sed -E 's/^([a-z]+: )?([0-9]+) passed.*/\2/' <<<"$line")))
    failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
}

logdir=$(mktemp -d /tmp/pgmover-tests.XXXXXX)
chmod 755 "$logdir"

echo "== unit tests under ASan + UBSan"
# set up (once) and build, showing the output only when something fails
build_dir() {
    local dir=$1
    shift
    if [[ ! -f "$dir/build.ninja" ]]; then
        meson setup "$dir" "$@" >"$logdir/setup-$dir.log" 2>&1 || { cat "$logdir/setup-$dir.log"; exit 1; }
    fi
    ninja -C "$dir" >"$logdir/build-$dir.log" 2>&1 || { cat "$logdir/build-$dir.log"; exit 1; }
}
build_dir build-asan -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
if meson test -C build-asan --suite unit --print-errorlogs >"$logdir/unit.log" 2>&1; then
    :
else
    failures+=("unit tests (see $logdir/unit.log)")
fi
cat "$logdir/unit.log" | grep -E "^ *[0-9]+/[0-9]+ |^Ok:|^Fail:" || true
ok=$(sed -nE 's/^Ok: +([0-9]+).*/\1/p' "$logdir/unit.log")
ko=$(sed -nE 's/^Fail: +([0-9]+).*/\1/p' "$logdir/unit.log")
passed=$((passed + ${ok:-0}))
failed=$((failed + ${ko:-0}))
unset ASAN_OPTIONS UBSAN_OPTIONS

echo "== integration tests"
build_dir build
export PGM_BUILD=build
# every suite is registered with meson too (tests/integration/meson.build)
registered=$(meson test -C build --no-rebuild --list --suite integration 2>/dev/null |
    sed -nE 's|^.*integration / (test_[a-z0-9_]+)$|\1|p')
for t in tests/integration/test_*.sh; do
    name=$(basename "$t" .sh)
    if ! grep -qx "$name" <<<"$registered"; then
        failed=$((failed + 1))
        failures+=("$name is not in tests/integration/meson.build")
        echo "$name: not registered in tests/integration/meson.build"
    fi
done
for t in tests/integration/test_*.sh; do
    name=$(basename "$t" .sh)
    start=$(date +%s)
    bash "$t" >"$logdir/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        77) status=SKIPPED ;;
        *) status=FAILED ;;
    esac
    if [[ $status == SKIPPED ]]; then
        # it ran nothing: one failure, with the reason it gave
        failed=$((failed + 1))
        failures+=("$name skipped (see $logdir/$name.log)")
        echo "$name: SKIPPED in $(($(date +%s) - start)) s: $(grep -E '^skip - ' "$logdir/$name.log" | tail -1)"
        continue
    fi
    [[ $status == ok ]] || failures+=("$name (see $logdir/$name.log)")
    if ! count_from "$logdir/$name.log"; then
        failed=$((failed + 1))
        [[ $status == ok ]] && failures+=("$name printed no summary")
    fi
    echo "$name: $status in $(($(date +%s) - start)) s: $(grep -E '[0-9]+ passed, [0-9]+ failed' "$logdir/$name.log" | tail -1)"
    if [[ $status != ok ]]; then
        grep -E '^not ok' "$logdir/$name.log" | head -20
        tail -20 "$logdir/$name.log"
    fi
done

if ((${#failures[@]} > 0)); then
    echo "failed: ${failures[*]}"
fi
echo "total: $passed passed, $failed failed"
((failed == 0 && ${#failures[@]} == 0))
