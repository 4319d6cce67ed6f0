#!/bin/sh
# Runs `clora selfcheck` on small LoRA layers under oclgrind and fails on any
# report: out-of-bounds access, data race, uninitialised value, API misuse.
# The shapes cover ragged tiles, r = 1, a reduction split into chunks
# (N >= 128), dropout, both kernel families and the smaller tiles of
# CLORA_RANK_TILE.
#   oclgrind_check.sh OCLGRIND CLORA
set -u
oclgrind=$1
clora=$2
log=$(mktemp)
status=0
# run KERNEL TILE selfcheck-options...
run() {
    kernel=$1
    tile=$2
    shift 2
    : > "$log"
    if ! CLORA_RANK_KERNEL=$kernel CLORA_RANK_TILE=$tile "$oclgrind" --check-api --data-races \
            --uninitialized --log "$log" "$clora" selfcheck --reps 0 "$@" > /dev/null; then
        echo "FAILED: selfcheck $* ($kernel, tile $tile)"
        status=1
    fi
    if [ -s "$log" ]; then
        echo "oclgrind reports for selfcheck $* ($kernel, tile $tile):"
        head -40 "$log"
        status=1
    else
        echo "clean: selfcheck $* ($kernel, tile $tile)"
    fi
}
for kernel in tiled streaming; do
    run $kernel 16 --rows 3 --in 5 --out 4 --rank 2
    run $kernel 16 --rows 130 --in 21 --out 17 --rank 3 --dropout 0.25
done
run tiled 4 --rows 9 --in 13 --out 11 --rank 1 --dropout 0.5
run tiled 1 --rows 5 --in 6 --out 7 --rank 3
run streaming 16 --rows 9 --in 13 --out 11 --rank 6 --dropout 0.5
rm -f "$log"
exit $status
