#!/usr/bin/env bash
# fuzz.sh — run every libFuzzer harness of tests/fuzz for SECONDS each (default
# 60): a clang build with -Dfuzz=true in $FUZZ_BUILD (default /tmp/fuzz-build;
# everything instrumented, ASan+UBSan), each fuzzer started on a copy of its seed
# corpus (tests/fuzz/corpus/<target>, never written to), then a table of
# executions and findings. A crash leaves its input under $work/artifacts/<target>/
# (the directory is kept when something was found) and its report is printed.
# Usage: bench/fuzz.sh [SECONDS]     (FUZZ_TARGETS="lsn config" for a subset)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
SECONDS_EACH=${1:-60}
BUILD=${FUZZ_BUILD:-/tmp/fuzz-build}
read -r -a TARGETS <<<"${FUZZ_TARGETS:-control config pgoutput pgbouncer lsn archive}"

command -v clang >/dev/null || {
    echo "fuzz.sh: clang is needed (apt-get install -y clang)" >&2
    exit 1
}
if [[ ! -d $BUILD ]]; then
    CC=clang meson setup "$BUILD" -Dfuzz=true -Db_lundef=false >/dev/null || exit 1
fi
ninja -C "$BUILD" >/dev/null || exit 1

work=$(mktemp -d /tmp/pgmover-fuzz.XXXXXX)
found=0
declare -A execs=() rate=() result=()
for t in "${TARGETS[@]}"; do
    bin=$BUILD/tests/fuzz/fuzz_$t
    [[ -x $bin ]] || {
        echo "fuzz.sh: no $bin (is the build's compiler clang?)" >&2
        exit 1
    }
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    cp tests/fuzz/corpus/"$t"/* "$work/corpus/$t/"
    echo "== $t: ${SECONDS_EACH}s"
    ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0} \
        "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/$t/" "$work/corpus/$t" >"$work/$t.log" 2>&1
    rc=$?
    # the final stats, or (after a crash) the last status line's count
    execs[$t]=$(awk '/^stat::number_of_executed_units:/ { print $NF }' "$work/$t.log" | tail -1)
    [[ -n ${execs[$t]} ]] || execs[$t]=$(grep -oE '^#[0-9]+' "$work/$t.log" | tail -1 | tr -d '#')
    rate[$t]=$(awk '/^stat::average_exec_per_sec:/ { print $NF }' "$work/$t.log" | tail -1)
    mapfile -t crashes < <(find "$work/artifacts/$t" -type f)
    if ((rc != 0 || ${#crashes[@]} > 0)); then
        found=1
        result[$t]="FINDING (exit $rc): ${crashes[*]:-no artifact}"
        # the sanitizer's or libFuzzer's report, up to the end of its stack
        sed -n '/^==[0-9]*==\|runtime error\|^ *#[0-9]* 0x\|deadly signal\|Test unit written/p' "$work/$t.log" | head -60
    else
        result[$t]="no crash"
    fi
    echo "   executions: ${execs[$t]:-?}; corpus now $(find "$work/corpus/$t" -type f | wc -l) inputs"
done

echo
printf '%-10s %12s %10s  %s\n' target executions exec/s result
for t in "${TARGETS[@]}"; do
    printf '%-10s %12s %10s  %s\n' "$t" "${execs[$t]:-?}" "${rate[$t]:-?}" "${result[$t]}"
done
if ((found)); then
    echo "logs and crashing inputs kept in $work"
    exit 1
fi
rm -rf "$work"
