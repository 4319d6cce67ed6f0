#!/bin/sh
# Runs each libFuzzer target for SECONDS, on a corpus that starts from the
# committed seeds (fuzz/corpus/TARGET) and grows in BUILD/corpus/TARGET
# from run to run, then prints executions per second, corpus size and the
# coverage reached. A crash, leak or timeout leaves its input in
# BUILD/crashes/TARGET and makes the run fail.
#   fuzz/run.sh BUILD SECONDS TARGET...
set -u
build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export LSAN_OPTIONS=use_tls=0:print_suppressions=0 # as make test-asan
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=""
printf '%-16s %8s %10s %10s %10s %8s\n' target seconds execs exec/s corpus cov
for target in "$@"; do
    corpus=$build/corpus/$target
    crashes=$build/crashes/$target
    mkdir -p "$corpus" "$crashes"
    cp -n "$here/corpus/$target/"* "$corpus/" 2> /dev/null
    log=$build/fuzz_$target.log
    "$build/fuzz/fuzz_$target" -max_total_time="$seconds" -max_len=65536 -timeout=20 \
        -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" \
        > "$log" 2>&1
    status=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(echo "$done_line" | sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p')
    cov=$(echo "$done_line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    size=$(ls "$corpus" | wc -l)
    printf '%-16s %8s %10s %10s %10s %8s\n' "$target" "$seconds" "${execs:-?}" "${rate:-?}" \
        "$size" "${cov:-?}"
    if [ "$status" -ne 0 ] || ls "$crashes" | grep -q .; then
        failed="$failed $target"
        grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -5
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: failures in:$failed; each input that failed is in $build/crashes/TARGET:"
    echo "  copy it into fuzz/corpus/TARGET/ (it becomes a regression test), then fix it"
    exit 1
fi
