#!/bin/sh
# `clora train --save-every 1` and `clora merge` killed with SIGKILL at
# random moments, many times. After each kill the folder must hold a whole
# adapter or model that `clora info` accepts (the previous one or the new
# one), a killed training run must resume to the same bytes as a run that
# was never killed, and a killed merge must leave the old merged model or
# the new one, byte for byte.
#   crash_save_check.sh CLORA [KILLS]
set -u
clora=$1
kills=${2:-24}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }

"$clora" demo --steps-a 20 --steps-b 20 --out "$work/demo" > "$work/demo.log" 2>&1 \
    || { cat "$work/demo.log"; fail "clora demo"; }
base=$work/demo/base
# the options of every training run (mktemp's paths hold no spaces)
run_options="--model $base --data $work/demo/task_b_train.safetensors --steps 60 --batch-size 16
    --targets fc1,head --rank 2 --save-every 1 --seed 3"
train() { "$clora" train $run_options "$@"; }
ms() { date +%s%3N; }

t0=$(ms)
train --out "$work/ref" > "$work/ref.log" 2>&1 || { cat "$work/ref.log"; fail "train"; }
train_ms=$(($(ms) - t0))

# seconds to wait before kill number $1 of a command that takes $2 ms, in
# its last $3 percent (where it saves)
delay() {
    awk -v seed="$1" -v ms="$2" -v last="$3" \
        'BEGIN { srand(seed); printf "%.3f", (1 - last / 100 * rand()) * ms / 1000 }'
}

# kill_after SECONDS PROGRAM ARGS...: runs it in the background and kills it
# then; prints "killed" or "finished". PROGRAM is a program, not a function,
# so that the kill reaches it.
kill_after() {
    seconds=$1
    shift
    "$@" > /dev/null 2>&1 &
    pid=$!
    sleep "$seconds"
    if kill -KILL "$pid" 2> /dev/null; then state=killed; else state=finished; fi
    wait "$pid" 2> /dev/null
    echo "$state"
}

killed=0 resumed=0
i=0
while [ "$i" -lt "$kills" ]; do
    i=$((i + 1))
    rm -rf "$work/run"
    state=$(kill_after "$(delay "$i" "$train_ms" 100)" "$clora" train $run_options --out "$work/run")
    [ "$state" = killed ] && killed=$((killed + 1))
    if [ -f "$work/run/adapter_config.json" ] || [ -f "$work/run/.clora-commit" ]; then
        "$clora" info "$work/run" > "$work/info.log" 2>&1 \
            || { cat "$work/info.log"; fail "clora info after kill $i"; }
    fi
    if [ -f "$work/run/training_state.safetensors" ]; then
        train --out "$work/run" --resume "$work/run" > "$work/resume.log" 2>&1 \
            || { cat "$work/resume.log"; fail "resuming after kill $i"; }
        cmp -s "$work/run/adapter_model.safetensors" "$work/ref/adapter_model.safetensors" \
            || fail "kill $i: the resumed run's adapter differs from the uninterrupted run's"
        resumed=$((resumed + 1))
    fi
done
[ "$killed" -gt 0 ] && [ "$resumed" -gt 0 ] \
    || fail "train: $killed of $kills runs killed, $resumed resumed: the kills missed the saves"
echo "ok: train killed $killed times of $kills, resumed $resumed times to the same adapter"

# merge: the old merged model is the demo adapter's, the new one the trained one's
merge() { "$clora" merge --model "$base" --adapter "$1" --out "$2"; }
merge "$work/demo/adapter" "$work/old" > /dev/null || fail "merge"
t0=$(ms)
merge "$work/ref" "$work/new" > /dev/null || fail "merge"
merge_ms=$(($(ms) - t0))
cmp -s "$work/old/model.safetensors" "$work/new/model.safetensors" \
    && fail "the two merged models are the same: the check could not tell them apart"
killed=0 old=0 new=0
i=0
while [ "$i" -lt "$kills" ]; do
    i=$((i + 1))
    rm -rf "$work/merged"
    cp -r "$work/old" "$work/merged"
    state=$(kill_after "$(delay "$((i + 1000))" "$merge_ms" 30)" "$clora" merge --model "$base" \
        --adapter "$work/ref" --out "$work/merged")
    [ "$state" = killed ] && killed=$((killed + 1))
    "$clora" info "$work/merged" > "$work/info.log" 2>&1 \
        || { cat "$work/info.log"; fail "clora info after merge kill $i"; }
    if cmp -s "$work/merged/model.safetensors" "$work/old/model.safetensors" &&
        cmp -s "$work/merged/config.json" "$work/old/config.json"; then
        old=$((old + 1))
    elif cmp -s "$work/merged/model.safetensors" "$work/new/model.safetensors" &&
        cmp -s "$work/merged/config.json" "$work/new/config.json"; then
        new=$((new + 1))
    else
        fail "merge kill $i: the folder holds neither the old merged model nor the new one"
    fi
done
[ "$killed" -gt 0 ] || fail "merge: no run was killed"
echo "ok: merge killed $killed times of $kills; the old model $old times, the new one $new times"
