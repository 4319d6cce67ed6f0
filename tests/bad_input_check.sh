#!/bin/sh
# Bad input at the command line, for every command of `clora`, as a table:
# one row per (command, case). Every row must fail cleanly:
#   1. a non-zero exit status that is no signal (< 128) and no timeout (124);
#   2. exactly one line on stderr, "clora: " or "clora COMMAND: " first and
#      holding the row's pattern (an extended regex); with "quiet", nothing
#      on stdout;
#   3. the row's output path (or "-" for none) as it was before: absent if it
#      was absent, byte for byte the same if it was there, and nothing new
#      beside it (no temporary or partial file).
# The bad files are made here, from the tiny test models in tests/golden.
#   bad_input_check.sh CLORA
# shellcheck disable=SC2086,SC2059 # command prefixes ($T, $small ...) split into words on
# purpose, and printf formats carry the bytes of the bad files as escapes
set -u
clora=$1
golden=$(cd "$(dirname "$0")/golden" 2> /dev/null && pwd)
# shellcheck source=tests/tiny_lm.sh
. "$(dirname "$0")/tiny_lm.sh"
[ -f "$golden/tiny_llama/model.safetensors" ] \
    || { echo "FAILED: no tests/golden beside $0"; exit 1; }
work=$(mktemp -d)
trap 'chmod -R u+rwx "$work" 2> /dev/null; rm -rf "$work"' EXIT
W=$work G=$golden
started=$(date +%s)

# ---- the table's runner ----------------------------------------------------------------

commands="clora demo train tokenize encode decode logits generate merge info devices selfcheck \
bench tune version help"
for c in $commands; do eval "cases_$c=0"; done
rows=0 passed=0 failures=

# snapshot PATH: what must not change when a command fails to write PATH: the
# bytes of PATH (of every file under it, for a folder) and, in the work folder,
# the names beside it (/proc changes by itself)
snapshot() {
    if [ -e "$1" ] || [ -L "$1" ]; then
        find "$1" -exec ls -ld {} + 2> /dev/null | awk '{print $1, $5, $NF}'
        find "$1" -type f -exec cksum {} + 2> /dev/null
    else
        echo "absent"
    fi
    parent=$(dirname "$1")
    case $parent in "$work"*) [ -d "$parent" ] && ls -a "$parent" ;; esac
}

# row [-e NAME=VALUE] [-i STDIN] CASE STDOUT OUTPUT PATTERN ARGS...: runs `clora ARGS...`
# (in the environment NAME=VALUE, reading STDIN) and checks it as above.
# STDOUT is "quiet" (must be empty) or "any"; OUTPUT a path or "-".
row() {
    env_set='' stdin=/dev/null
    while :; do
        case $1 in
        -e) env_set=$2; shift 2 ;;
        -i) stdin=$2; shift 2 ;;
        *) break ;;
        esac
    done
    name=$1 stdout_rule=$2 output=$3 pattern=$4
    shift 4
    command=clora
    for c in $commands; do [ "${1-}" = "$c" ] && command=$c; done
    eval "cases_$command=\$((cases_$command + 1))"
    rows=$((rows + 1))
    before='' existed=''
    if [ "$output" != - ]; then
        before=$(snapshot "$output")
        [ -e "$output" ] && existed=yes
    fi
    if [ -n "$env_set" ]; then
        timeout 60 env "$env_set" "$clora" "$@" < "$stdin" > "$work/stdout" 2> "$work/stderr"
    else
        timeout 60 "$clora" "$@" < "$stdin" > "$work/stdout" 2> "$work/stderr"
    fi
    rc=$?
    prefix="clora: |clora $command: "
    [ "$command" = clora ] && prefix="clora: "
    why=
    if [ "$rc" -eq 0 ]; then
        why="exit status 0 on bad input"
    elif [ "$rc" -eq 124 ]; then
        why="timed out after 60 s"
    elif [ "$rc" -ge 125 ]; then
        why="exit status $rc (a signal or a failed start)"
    elif [ "$(wc -l < "$work/stderr")" -ne 1 ] || [ -n "$(tail -c 1 "$work/stderr" | tr -d '\n')" ]
    then
        why="stderr is not exactly one line"
    elif ! head -n 1 "$work/stderr" | grep -Eq "^($prefix)"; then
        why="stderr does not start with \"clora: \" or \"clora $command: \""
    elif ! grep -Eq -- "$pattern" "$work/stderr"; then
        why="stderr lacks /$pattern/"
    elif [ "$stdout_rule" = quiet ] && [ -s "$work/stdout" ]; then
        why="printed to stdout"
    elif [ "$output" != - ] && [ "$(snapshot "$output")" != "$before" ]; then
        why="left $output (or something beside it) changed"
    fi
    if [ -z "$why" ]; then
        passed=$((passed + 1))
        return
    fi
    failures=yes
    {
        printf 'FAILED [%s/%s]: %s\n' "$command" "$name" "$why"
        printf '  command: clora'
        for a in "$@"; do printf " '%s'" "$a"; done
        printf '\n  exit status: %s%s\n' "$rc" "${env_set:+ (with $env_set)}"
        sed 's/^/  stderr: /' "$work/stderr" | head -n 20
        [ -s "$work/stdout" ] && head -c 600 "$work/stdout" | sed 's/^/  stdout: /'
        echo
    } >> "$work/failures"
    # a failed row must not spoil the next: its output goes
    [ "$output" != - ] && [ -z "$existed" ] && rm -rf "$output"
    :
}

# ---- the bad files ------------------------------------------------------------------------

# le64 N: N as 8 little-endian bytes (N < 2^63)
le64() {
    n=$1 i=0
    while [ $i -lt 8 ]; do
        printf "\\$(printf %03o $((n & 255)))"
        n=$((n >> 8)) i=$((i + 1))
    done
}
# safetensors FILE HEADER DATA-BYTES: a safetensors file of that header (padded to 8
# bytes) and that many zero bytes of data
safetensors() {
    h=$2
    while [ $((${#h} % 8)) -ne 0 ]; do h="$h "; done
    { le64 ${#h}; printf '%s' "$h"; head -c "$3" /dev/zero; } > "$1"
}
# poke FILE OFFSET BYTES: overwrite bytes (printf escapes) at OFFSET
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2> /dev/null; }
# data_at FILE: where the data of a safetensors file starts
data_at() { echo $((8 + $(od -An -t u8 -N 8 "$1" | tr -d ' '))); }
# cut_file IN OUT BYTES: the first BYTES bytes of IN
cut_file() { head -c "$3" "$1" > "$2"; }
size_of() { wc -c < "$1" | tr -d ' '; }
NAN='\000\000\300\177' INF='\000\000\200\177'

llama=$G/tiny_llama gpt2=$G/tiny_gpt2 bert=$G/tiny_bert gguf=$G/gguf_llama/llama-Q8_0.gguf
lm_data=$G/next_token_24x10.safetensors smollm=$G/smollm2_tokenizer.gguf
gpt2_tok=$G/gpt2_tokenizer

mkdir "$W/adir" "$W/empty_dir" "$W/out"
printf 'not a folder\n' > "$W/afile"
ln -s "$W/loop" "$W/loop" # opening it fails (ELOOP), for root too
printf 'kept as it was\n' > "$W/existing"
mkdir "$W/existing_dir"
printf 'kept as it was\n' > "$W/existing_dir/inside"

# safetensors files
cut_file "$llama/model.safetensors" "$W/cut_header.safetensors" 100
cut_file "$llama/model.safetensors" "$W/cut_data.safetensors" \
    $(($(size_of "$llama/model.safetensors") - 1000))
tail -c 4096 "$llama/model.safetensors" > "$W/garbage.safetensors" # float bytes: noise
: > "$W/empty.safetensors"
{ le64 4294967296; printf '{}      '; } > "$W/long_header.safetensors" # 4 GiB header claimed
{ printf '\377\377\377\377\377\377\377\377{}      '; } > "$W/max_header.safetensors"
{ le64 1000; printf '{}      '; } > "$W/short_file.safetensors" # a header past the end
safetensors "$W/not_json.safetensors" '{"inputs": {"dtype": "F32", "sha' 64
safetensors "$W/overflow.safetensors" \
    '{"inputs":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]},'\
'"labels":{"dtype":"I32","shape":[2],"data_offsets":[16,24]}}' 24
safetensors "$W/past_end.safetensors" \
    '{"inputs":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'\
'"labels":{"dtype":"I32","shape":[2],"data_offsets":[16,4096]}}' 24
safetensors "$W/bad_dtype.safetensors" \
    '{"inputs":{"dtype":"F99","shape":[2,2],"data_offsets":[0,16]},'\
'"labels":{"dtype":"I32","shape":[2],"data_offsets":[16,24]}}' 24

# GGUF files
cut_file "$gguf" "$W/cut_meta.gguf" 200
cut_file "$gguf" "$W/cut_tensors.gguf" $(($(size_of "$gguf") - 1000))
cut_file "$smollm" "$W/cut_tokenizer.gguf" 100000
{ printf 'GGUF'; tail -c 4096 "$llama/model.safetensors"; } > "$W/garbage.gguf"
{ printf 'GGUF'; printf '\143\000\000\000'; le64 0; le64 0; } > "$W/version99.gguf"
{ printf 'GGUF\003\000\000\000'; le64 0; le64 4611686018427387904; } > "$W/many_kv.gguf"
{ printf 'GGUF\003\000\000\000'; le64 4611686018427387904; le64 0; } > "$W/many_tensors.gguf"

# model folders, each tiny_llama with one thing wrong
model_copy() { mkdir "$W/$1" && cp "$2/config.json" "$2/model.safetensors" "$W/$1/"; }
model_copy m_cut_header "$llama" \
    && cp "$W/cut_header.safetensors" "$W/m_cut_header/model.safetensors"
model_copy m_cut_data "$llama" && cp "$W/cut_data.safetensors" "$W/m_cut_data/model.safetensors"
model_copy m_garbage "$llama" && cp "$W/garbage.safetensors" "$W/m_garbage/model.safetensors"
model_copy m_cut_config "$llama" && cut_file "$llama/config.json" "$W/m_cut_config/config.json" 300
model_copy m_no_weights "$llama" && rm "$W/m_no_weights/model.safetensors"
model_copy m_dir_weights "$llama" && rm "$W/m_dir_weights/model.safetensors" \
    && mkdir "$W/m_dir_weights/model.safetensors"
model_copy m_nan "$llama" && poke "$W/m_nan/model.safetensors" \
    "$(data_at "$W/m_nan/model.safetensors")" "$NAN"
model_copy m_inf "$llama" && poke "$W/m_inf/model.safetensors" \
    $(($(data_at "$W/m_inf/model.safetensors") + 40)) "$INF"
model_copy m_wide "$llama" # a config that does not fit the weights
sed 's/"hidden_size": 24/"hidden_size": 32/' "$llama/config.json" > "$W/m_wide/config.json"
model_copy m_overflow "$llama" # a header whose shape product overflows
safetensors "$W/m_overflow/model.safetensors" \
    '{"model.embed_tokens.weight":{"dtype":"F32","shape":[4611686018427387904,8],'\
'"data_offsets":[0,16]}}' 16
model_copy gpt2_nan "$gpt2" && poke "$W/gpt2_nan/model.safetensors" \
    "$(data_at "$W/gpt2_nan/model.safetensors")" "$NAN"

# adapters, each tiny_llama_lora with one thing wrong
adapter_copy() {
    mkdir "$W/$1" && cp "$2/adapter_config.json" "$2/adapter_model.safetensors" "$W/$1/"
}
lora=$G/tiny_llama_lora
adapter_copy a_cut_tensors "$lora" && cut_file "$lora/adapter_model.safetensors" \
    "$W/a_cut_tensors/adapter_model.safetensors" 3000
adapter_copy a_cut_config "$lora" && cut_file "$lora/adapter_config.json" \
    "$W/a_cut_config/adapter_config.json" 400
adapter_copy a_no_config "$lora" && rm "$W/a_no_config/adapter_config.json"
adapter_copy a_no_tensors "$lora" && rm "$W/a_no_tensors/adapter_model.safetensors"
adapter_copy a_garbage "$lora" \
    && cp "$W/garbage.safetensors" "$W/a_garbage/adapter_model.safetensors"
adapter_copy a_nan "$lora" && poke "$W/a_nan/adapter_model.safetensors" \
    $(($(data_at "$W/a_nan/adapter_model.safetensors") + 8)) "$NAN"
adapter_copy a_inf "$lora" && poke "$W/a_inf/adapter_model.safetensors" \
    $(($(data_at "$W/a_inf/adapter_model.safetensors") + 8)) "$INF"
adapter_copy a_rank "$lora" # r 8 in the config, rank-4 tensors
sed 's/"r": 4/"r": 8/' "$lora/adapter_config.json" > "$W/a_rank/adapter_config.json"
adapter_copy a_overflow "$lora"
safetensors "$W/a_overflow/adapter_model.safetensors" \
    '{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight":{"dtype":"F32",'\
'"shape":[4,4611686018427387904],"data_offsets":[0,16]}}' 16

# datasets
data_copy() { cp "$lm_data" "$W/$1.safetensors"; }
lm_at=$(data_at "$lm_data") # inputs I32 (24, 10), then labels I32 (24, 10)
data_copy d_label_big && poke "$W/d_label_big.safetensors" $((lm_at + 960)) '\347\003\000\000'
data_copy d_label_neg && poke "$W/d_label_neg.safetensors" $((lm_at + 964)) '\373\377\377\377'
data_copy d_input_big && poke "$W/d_input_big.safetensors" "$lm_at" '\347\003\000\000'
data_copy d_input_neg && poke "$W/d_input_neg.safetensors" $((lm_at + 4)) '\377\377\377\377'
cut_file "$lm_data" "$W/d_cut.safetensors" 2000
# features: inputs F32 (2, 64), labels I32 (2) or targets F32 (2, 1)
features() { # FILE LABEL1-BYTES: labels [0, LABEL1]
    safetensors "$1" '{"inputs":{"dtype":"F32","shape":[2,64],"data_offsets":[0,512]},'\
'"labels":{"dtype":"I32","shape":[2],"data_offsets":[512,520]}}' 520
    poke "$1" $(($(data_at "$1") + 516)) "$2"
}
features "$W/f_good.safetensors" '\001\000\000\000'
features "$W/f_label_big.safetensors" '\014\000\000\000' # 12, for a 10-class head
features "$W/f_label_huge.safetensors" '\377\377\377\177'
regression() { # FILE TARGET1-BYTES
    safetensors "$1" '{"inputs":{"dtype":"F32","shape":[2,64],"data_offsets":[0,512]},'\
'"targets":{"dtype":"F32","shape":[2,1],"data_offsets":[512,520]}}' 520
    poke "$1" $(($(data_at "$1") + 516)) "$2"
}
regression "$W/r_nan.safetensors" "$NAN"
regression "$W/r_inf.safetensors" '\000\000\200\377'
safetensors "$W/f_narrow.safetensors" \
    '{"inputs":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},'\
'"labels":{"dtype":"I32","shape":[2],"data_offsets":[24,32]}}' 32
safetensors "$W/f_no_rows.safetensors" \
    '{"inputs":{"dtype":"F32","shape":[0,64],"data_offsets":[0,0]},'\
'"labels":{"dtype":"I32","shape":[0],"data_offsets":[0,0]}}' 0
safetensors "$W/f_label_f32.safetensors" \
    '{"inputs":{"dtype":"F32","shape":[2,64],"data_offsets":[0,512]},'\
'"labels":{"dtype":"F32","shape":[2],"data_offsets":[512,520]}}' 520

# a clora model (the demo's, small) for the feature datasets; and a GPT-2 folder with
# a 32-token tokenizer of its own, for data tokenized by another tokenizer
"$clora" demo --steps-a 2 --steps-b 2 --hidden 8 --out "$W/demo" > "$W/demo.log" 2>&1 \
    || { cat "$W/demo.log"; echo "FAILED: the small demo model"; exit 1; }
base=$W/demo/base
tiny_lm "$W/tiny_lm" "$gpt2" || { echo "FAILED: the tiny GPT-2 with its own tokenizer"; exit 1; }
printf '{"text": "the hell"}\n{"text": "he the"}\n' > "$W/text.jsonl"
"$clora" tokenize --model "$W/tiny_lm" --input "$W/text.jsonl" --out "$W/tiny_lm_data.safetensors" \
    > /dev/null || { echo "FAILED: tokenize for tiny_lm"; exit 1; }
"$clora" tokenize --model "$smollm" --input "$W/text.jsonl" --out "$W/smollm_data.safetensors" \
    > /dev/null || { echo "FAILED: tokenize with SmolLM2's tokenizer"; exit 1; }
# tokenizer folders and text inputs
mkdir "$W/cut_vocab" "$W/cut_tokenizer_json" "$W/garbage_vocab"
cut_file "$gpt2_tok/vocab.json" "$W/cut_vocab/vocab.json" 5000
cp "$gpt2_tok/merges.txt" "$W/cut_vocab/"
cut_file "$G/bpe_tokenizer_json/gpt2.json" "$W/cut_tokenizer_json/tokenizer.json" 300
tail -c 4096 "$llama/model.safetensors" > "$W/garbage_vocab/vocab.txt"
printf 'a\tthe cat\nb\tthe dog\n' > "$W/labelled.txt"
printf '{"text": "the cat"}\n{"text": "the d' > "$W/cut.jsonl"
printf '{"text": "the \\u0000 cat"}\n' > "$W/nul.jsonl"
printf '{"prompt": 5, "completion": "x"}\n' > "$W/not_text.jsonl"
printf 'a\tthe \000 cat\n' > "$W/nul.txt"
printf 'hello\nwor\000ld\n' > "$W/nul_line.txt"
tail -c 4096 "$llama/model.safetensors" > "$W/garbage.txt"
# run folders to resume from
mkdir "$W/no_state" "$W/bad_state"
printf 'step 3\n' > "$W/bad_state/training_state.safetensors"
# tuning files
printf '{"format": "clora-clblast-tuning", "vers' > "$W/cut_tuning.json"
cp "$W/garbage.txt" "$W/garbage_tuning.json"

# unreadable files: chmod 000 stops everyone but root
readable_by_all=
if [ "$(id -u)" -ne 0 ]; then
    cp "$lm_data" "$W/locked.safetensors" && chmod 000 "$W/locked.safetensors"
    model_copy m_locked "$llama" && chmod 000 "$W/m_locked/model.safetensors"
    cp "$W/labelled.txt" "$W/locked.txt" && chmod 000 "$W/locked.txt"
else
    readable_by_all="running as root, whom chmod 000 does not stop; the unreadable rows that \
run use a symlink loop (ELOOP) and /proc/self/mem (EIO)"
fi
O=$W/out # outputs that must not appear go under here

# Rows that get as far as running a model must not wait for their kernels to
# compile (minutes, on an empty PoCL cache): these good runs compile them first.
warm() {
    "$clora" "$@" > "$W/warm.log" 2>&1 || { cat "$W/warm.log"; echo "FAILED: clora $*"; exit 1; }
}
warm train --model "$llama" --data "$lm_data" --steps 1 --batch-size 8 --out "$W/warm_lora"
warm logits --model "$gpt2" --tokens 1,2 --out "$W/warm_gpt2.st"
warm logits --model "$bert" --tokens 1,2 --token-types 0,1 --out "$W/warm_bert.st"
warm selfcheck --rows 4 --in 4 --out 4 --reps 0

# ---- the table ---------------------------------------------------------------------------
# row CASE STDOUT OUTPUT PATTERN clora-arguments...
# (cli_check.sh has more bad input, each with its exact message; these rows do not repeat it)

# the command itself
row no-command quiet - 'no command given'
row unknown-command quiet - 'unknown command "frobnicate"' frobnicate
row empty-command quiet - 'unknown command ""' ''
row option-as-command quiet - 'unknown command "--bogus"' --bogus
row version-extra quiet - 'unexpected argument "extra" after version' version extra
row version-option quiet - 'unexpected argument "--bogus" after --version' --version --bogus
row help-extra quiet - 'unexpected argument "extra" after help' help extra

# demo (its steps cut to 2 and its width to 8, so that what fails late fails fast)
small="--steps-a 2 --steps-b 2 --hidden 8"
row unknown-option quiet "$O/d" 'unknown option "--bogus"' demo --bogus --out "$O/d"
row extra-argument quiet "$O/d" 'unexpected argument "now"' demo now --out "$O/d"
row missing-value quiet - 'option --out needs a value' demo $small --out
row steps-zero quiet "$O/d" '--steps-a must be at least 1' demo --steps-a 0 --out "$O/d"
row steps-negative quiet "$O/d" 'option --steps-b expects a non-negative integer, got "-3"' \
    demo --steps-b -3 --out "$O/d"
row hidden-zero quiet "$O/d" '--hidden must be at least 1' demo --hidden 0 --out "$O/d"
row seed-not-number quiet "$O/d" 'option --seed expects a non-negative integer, got "x1"' \
    demo --seed x1 --out "$O/d"
row alpha-nan quiet "$O/d" 'option --alpha expects a number, got "nan"' \
    demo --alpha nan --out "$O/d"
row rank-zero any "$O/d" 'rank r = 0; 1 <= r <= 256' demo $small --rank 0 --out "$O/d"
row rank-too-big any "$O/d" 'rank r = 300; 1 <= r <= 256' demo $small --rank 300 --out "$O/d"
row device-index quiet "$O/d" 'device selector "99": no device with that index' \
    demo $small --device 99 --out "$O/d"
row device-name quiet "$O/d" 'device selector "nosuchdevice" matches no device' \
    demo $small --device nosuchdevice --out "$O/d"
row out-under-file quiet "$W/afile/demo" '--out .*afile/demo: cannot write in .*afile: not a folder' \
    demo $small --out "$W/afile/demo"
row out-under-proc any /proc/clora-never 'saving: cannot create folder /proc/clora-never/base' \
    demo $small --out /proc/clora-never
row out-is-file quiet "$W/existing" '--out .*existing is not a folder' \
    demo $small --out "$W/existing"
row out-kept-on-bad-rank any "$W/existing_dir" 'rank r = 0' demo $small --rank 0 \
    --out "$W/existing_dir"

# train: options
T="train --model $llama --steps 1 --batch-size 8" TD="--data $lm_data"
row unknown-option quiet "$O/t" 'unknown option "--bogus"' $T $TD --out "$O/t" --bogus
row flag-with-value quiet "$O/t" 'unknown option "--lora-on-head=1"' $T $TD --out "$O/t" \
    --lora-on-head=1
row missing-value quiet - 'option --out needs a value' $T $TD --out
row missing-required quiet - '--model, --data and --out are required' train --model "$llama"
row given-twice quiet "$O/t" 'option --rank is given twice' $T $TD --out "$O/t" --rank 2 --rank 4
row extra-argument quiet "$O/t" 'unexpected argument "extra"' $T $TD --out "$O/t" extra
row rank-not-number quiet "$O/t" 'option --rank expects a non-negative integer, got "four"' \
    $T $TD --out "$O/t" --rank four
row rank-zero any "$O/t" 'rank r = 0; 1 <= r <= 256' $T $TD --out "$O/t" --rank 0
row rank-too-big any "$O/t" 'rank r = 257; 1 <= r <= 256' $T $TD --out "$O/t" --rank 257
row rank-overflow quiet "$O/t" 'expects a non-negative integer, got "18446744073709551616"' \
    $T $TD --out "$O/t" --rank 18446744073709551616
row bias-unknown quiet "$O/t" '--bias "some" is not one of none lora_only all' $T $TD \
    --out "$O/t" --bias some
row layers-not-index quiet "$O/t" '--layers entry "x" is not a layer index' $T $TD --out "$O/t" \
    --layers 0,x
row layers-negative quiet "$O/t" '--layers entry "-1" is not a layer index' $T $TD \
    --out "$O/t" --layers -1
row layers-empty quiet "$O/t" '--layers gives no layer index' $T $TD --out "$O/t" --layers ,
row layers-pattern-alone quiet "$O/t" '--layers-pattern needs --layers' $T $TD --out "$O/t" \
    --layers-pattern layers
row layers-with-regex quiet "$O/t" '--layers applies to --targets, not --target-regex' $T $TD \
    --out "$O/t" --layers 0 --target-regex '.*q_proj'
row layers-none-there any "$O/t" 'no Linear or Embedding layer matched' $T $TD --out "$O/t" --layers 99
row dora-on-embedding any "$O/t" 'target module "model.embed_tokens" is an Embedding; clora.s DoRA' \
    $T $TD --out "$O/t" --dora --targets q_proj,embed_tokens
row dora-on-packed any "$O/t" 'stored Q8_0; load the model with .*clora train --base-dtype f32' \
    train --model "$gguf" $TD --out "$O/t" --steps 1 --batch-size 8 --dora
row rank-pattern-bad quiet "$O/t" '--rank-pattern entry "q_proj" is not REGEX=RANK' \
    $T $TD --out "$O/t" --rank-pattern q_proj
row rank-pattern-zero any "$O/t" 'rank_pattern entry 0 gives rank 0' $T $TD --out "$O/t" \
    --rank-pattern 'q_proj=0'
row steps-zero quiet "$O/t" '--steps must be at least 1' \
    train --model "$llama" $TD --out "$O/t" --steps 0
row epochs-zero quiet "$O/t" '--epochs must be at least 1' \
    train --model "$llama" $TD --out "$O/t" --epochs 0
row steps-float quiet "$O/t" 'option --steps expects a non-negative integer, got "1.5"' \
    train --model "$llama" $TD --out "$O/t" --steps 1.5
row batch-zero quiet "$O/t" '--batch-size must be at least 1' \
    train --model "$llama" $TD --out "$O/t" --batch-size 0
row grad-accum-zero quiet "$O/t" '--grad-accum must be at least 1' $T $TD --out "$O/t" \
    --grad-accum 0
row lr-negative quiet "$O/t" '--lr must be at least 0' $T $TD --out "$O/t" --lr -1
row lr-infinite quiet "$O/t" 'option --lr expects a number, got "inf"' $T $TD --out "$O/t" \
    --lr inf
row lr-not-number quiet "$O/t" 'option --lr expects a number, got "fast"' $T $TD --out "$O/t" \
    --lr fast
row dropout-one any "$O/t" 'dropout 1 is not in \[0, 1\)' $T $TD --out "$O/t" --dropout 1
row dropout-negative any "$O/t" 'dropout -0.5 is not in \[0, 1\)' $T $TD --out "$O/t" \
    --dropout -0.5
row weight-decay-negative quiet "$O/t" '--weight-decay must be at least 0' $T $TD --out "$O/t" \
    --weight-decay -1
row momentum-negative quiet "$O/t" '--momentum must be at least 0' $T $TD --out "$O/t" \
    --optimizer sgd --momentum -0.5
row clip-negative quiet "$O/t" '--clip must be at least 0' $T $TD --out "$O/t" --clip -1
row seed-negative quiet "$O/t" 'option --seed expects a non-negative integer, got "-1"' \
    $T $TD --out "$O/t" --seed -1
row optimizer-unknown quiet "$O/t" '--optimizer "adam" is not one of adamw sgd' \
    $T $TD --out "$O/t" --optimizer adam
row schedule-unknown quiet "$O/t" '--schedule "step" is not one of constant linear cosine' \
    $T $TD --out "$O/t" --schedule step
row base-dtype-unknown quiet "$O/t" '--base-dtype "q5_k" is not one of stored' \
    $T $TD --out "$O/t" --base-dtype q5_k
row target-regex-bad any "$O/t" 'target_regex "\(" is not a valid regex' $T $TD --out "$O/t" \
    --target-regex '('
row trainable-unknown any "$O/t" 'modules_to_save not found: nope' $T $TD --out "$O/t" \
    --trainable nope
row adapter-name-empty any "$O/t" 'bad adapter name ""' $T $TD --out "$O/t" --adapter-name ''
row num-labels-below quiet "$O/t" '--num-labels 1, but the data has label 1' \
    train --model "$llama" --data "$W/f_good.safetensors" --out "$O/t" --num-labels 1
row device-index quiet "$O/t" 'device selector "99": no device' $T $TD --out "$O/t" --device 99

# train: the model
row model-missing quiet "$O/t" 'cannot open .*nothing/config.json: No such file' \
    train --model "$W/nothing" $TD --out "$O/t"
row model-is-file quiet "$O/t" 'cannot open .*afile/config.json: Not a directory' \
    train --model "$W/afile" $TD --out "$O/t"
row model-empty-dir quiet "$O/t" 'cannot open .*empty_dir/config.json: No such file' \
    train --model "$W/empty_dir" $TD --out "$O/t"
row model-loop quiet "$O/t" 'cannot open .*loop/config.json: Too many levels of symbolic links' \
    train --model "$W/loop" $TD --out "$O/t"
row model-cut-header quiet "$O/t" 'header length 2864 passes the end of the 100-byte file' \
    train --model "$W/m_cut_header" $TD --out "$O/t"
row model-cut-data quiet "$O/t" 'needs 55264 bytes, the file holds 54264 after the header' \
    train --model "$W/m_cut_data" $TD --out "$O/t"
row model-garbage quiet "$O/t" 'm_garbage/model.safetensors: safetensors: header length' \
    train --model "$W/m_garbage" $TD --out "$O/t"
row model-cut-config quiet "$O/t" 'm_cut_config/config.json: not valid JSON' \
    train --model "$W/m_cut_config" $TD --out "$O/t"
row model-no-weights quiet "$O/t" 'cannot open .*m_no_weights/model.safetensors: No such file' \
    train --model "$W/m_no_weights" $TD --out "$O/t"
row model-weights-dir quiet "$O/t" 'm_dir_weights/model.safetensors is not a regular file' \
    train --model "$W/m_dir_weights" $TD --out "$O/t"
row model-nan quiet "$O/t" 'tensor "lm_head.weight" holds NaN at element 0' \
    train --model "$W/m_nan" $TD --out "$O/t"
row model-inf quiet "$O/t" 'tensor "lm_head.weight" holds an infinity at element 10' \
    train --model "$W/m_inf" $TD --out "$O/t"
row model-wrong-shape quiet "$O/t" 'parameter model.embed_tokens.weight is \(50, 32\)' \
    train --model "$W/m_wide" $TD --out "$O/t"
row model-overflow quiet "$O/t" 'tensor "model.embed_tokens.weight": shape overflows' \
    train --model "$W/m_overflow" $TD --out "$O/t"
row model-gguf-cut quiet "$O/t" 'cut_tensors.gguf: tensor .* pass the end of the' \
    train --model "$W/cut_tensors.gguf" $TD --out "$O/t"

# train: the data
row data-missing quiet "$O/t" 'cannot open .*nothing: No such file' \
    $T --data "$W/nothing" --out "$O/t"
row data-dir quiet "$O/t" 'adir is not a regular file' $T --data "$W/adir" --out "$O/t"
row data-loop quiet "$O/t" 'cannot open .*loop: Too many levels of symbolic links' \
    $T --data "$W/loop" --out "$O/t"
row data-empty quiet "$O/t" 'the file is 0 bytes; it needs at least 8' \
    $T --data "$W/empty.safetensors" --out "$O/t"
row data-cut quiet "$O/t" 'needs 1920 bytes, the file holds 1856 after the header' \
    $T --data "$W/d_cut.safetensors" --out "$O/t"
row data-garbage quiet "$O/t" 'garbage.safetensors: safetensors: header length [0-9]* exceeds' \
    $T --data "$W/garbage.safetensors" --out "$O/t"
row data-long-header quiet "$O/t" 'header length 4294967296 exceeds the limit' \
    $T --data "$W/long_header.safetensors" --out "$O/t"
row data-short-file quiet "$O/t" 'header length 1000 passes the end of the 16-byte file' \
    $T --data "$W/short_file.safetensors" --out "$O/t"
row data-max-header quiet "$O/t" 'header length 18446744073709551615 exceeds the limit' \
    $T --data "$W/max_header.safetensors" --out "$O/t"
row data-not-json quiet "$O/t" 'header is not valid JSON' \
    $T --data "$W/not_json.safetensors" --out "$O/t"
row data-overflow quiet "$O/t" 'tensor "inputs": shape overflows' \
    $T --data "$W/overflow.safetensors" --out "$O/t"
row data-past-end quiet "$O/t" 'tensor "labels": 2 elements of I32 need 8 bytes, data_offsets' \
    $T --data "$W/past_end.safetensors" --out "$O/t"
row data-bad-dtype quiet "$O/t" 'tensor "inputs" has unknown dtype "F99"' \
    $T --data "$W/bad_dtype.safetensors" --out "$O/t"
row data-no-rows quiet "$O/t" '"inputs" must be \(N, \.\.\.\) with 2 to 4 dimensions, not empty' \
    train --model "$base" --data "$W/f_no_rows.safetensors" --out "$O/t"
row data-float-labels quiet "$O/t" '"labels" must be I32 \(N\)' \
    train --model "$base" --data "$W/f_label_f32.safetensors" --out "$O/t"
row data-nan-targets quiet "$O/t" '"targets" holds NaN in example 1' \
    train --model "$base" --data "$W/r_nan.safetensors" --out "$O/t"
row data-inf-targets quiet "$O/t" '"targets" holds an infinity in example 1' \
    train --model "$base" --data "$W/r_inf.safetensors" --out "$O/t"
row data-narrow any "$O/t" 'expected \(out, in\) = \(8, 3\)' \
    train --model "$base" --data "$W/f_narrow.safetensors" --out "$O/t"
row label-past-head any "$O/t" '1 labels lie outside \[0, 10\)' \
    train --model "$base" --data "$W/f_label_big.safetensors" --out "$O/t"
row label-huge any "$O/t" '1 labels lie outside \[0, 10\)' \
    train --model "$base" --data "$W/f_label_huge.safetensors" --out "$O/t"
row lm-label-past-vocab any "$O/t" '1 labels lie outside \[0, 50\)' \
    $T --data "$W/d_label_big.safetensors" --out "$O/t"
row lm-label-negative quiet "$O/t" '"labels" holds -5 in example 0' \
    $T --data "$W/d_label_neg.safetensors" --out "$O/t"
row lm-input-past-vocab any "$O/t" 'id 999 at position 0 is outside \[0, 50\)' \
    $T --data "$W/d_input_big.safetensors" --out "$O/t"
row lm-input-negative any "$O/t" 'id -1 at position 1 is outside \[0, 50\)' \
    $T --data "$W/d_input_neg.safetensors" --out "$O/t"
row data-other-tokenizer quiet "$O/t" 'smollm_data.safetensors was made with another tokenizer' \
    train --model "$W/tiny_lm" --data "$W/smollm_data.safetensors" --out "$O/t"
row val-other-tokenizer quiet "$O/t" 'smollm_data.safetensors was made with another tokenizer' \
    train --model "$W/tiny_lm" --data "$W/tiny_lm_data.safetensors" \
    --val "$W/smollm_data.safetensors" --out "$O/t"
row test-cut quiet "$O/t" 'd_cut.safetensors: .*needs 1920 bytes' $T $TD \
    --test "$W/d_cut.safetensors" --out "$O/t"
row val-missing quiet "$O/t" 'cannot open .*nothing: No such file' $T $TD --val "$W/nothing" \
    --out "$O/t"

# train: resuming and outputs
row resume-missing any "$O/t" 'resuming: cannot open .*nothing/training_state.safetensors' \
    $T $TD --out "$O/t" --resume "$W/nothing"
row resume-no-state any "$O/t" 'resuming: cannot open .*no_state/training_state.safetensors' \
    $T $TD --out "$O/t" --resume "$W/no_state"
row resume-bad-state any "$O/t" 'resuming: .*bad_state/training_state.safetensors: .*7 bytes' \
    $T $TD --out "$O/t" --resume "$W/bad_state"
row out-under-file quiet "$W/afile/t" '--out .*afile/t: cannot write in .*afile: not a folder' \
    $T $TD --out "$W/afile/t"
row out-under-proc any /proc/clora-never \
    'cannot create folder /proc/clora-never|/proc/clora-never: cannot write in /proc' \
    $T $TD --out /proc/clora-never
row out-is-file quiet "$W/existing" '--out .*existing is not a folder' $T $TD --out "$W/existing"
row out-kept-on-bad-data quiet "$W/existing_dir" 'needs 1920 bytes' $T \
    --data "$W/d_cut.safetensors" --out "$W/existing_dir"
row log-unwritable quiet "$O/t" '--log .*: cannot write in .*afile: not a folder' \
    $T $TD --out "$O/t" --log "$W/afile/loss.csv"
row log-is-dir quiet "$O/t" '--log .*adir is a folder' $T $TD --out "$O/t" --log "$W/adir"
row json-unwritable quiet "$O/t" '--json .*: cannot write in .*afile: not a folder' \
    $T $TD --out "$O/t" --json "$W/afile/run.json"
row save-initial-unwritable quiet "$O/t" '--save-initial .*: cannot write in .*afile' \
    $T $TD --out "$O/t" --save-initial "$W/afile/initial"

# tokenize
K="tokenize --model $gpt2_tok --input $W/labelled.txt"
KM="tokenize --model $gpt2_tok"
row unknown-option quiet "$O/k.st" 'unknown option "--bogus"' $K --out "$O/k.st" --bogus
row missing-value quiet - 'option --out needs a value' $K --out
row missing-required quiet - '--model, --input and --out are required' \
    tokenize --input "$W/labelled.txt"
row max-length-one quiet "$O/k.st" '--max-length must be at least 2' $K --out "$O/k.st" \
    --max-length 1
row max-length-not-number quiet "$O/k.st" 'expects a non-negative integer, got "long"' \
    $K --out "$O/k.st" --max-length long
row format-unknown quiet "$O/k.st" '--format "parquet" is not one of lines csv tsv jsonl' \
    $K --out "$O/k.st" --format parquet
row label-not-listed quiet "$O/k.st" 'labelled.txt line 2: label "b" is not in --labels' \
    $K --out "$O/k.st" --labels a,c
row model-missing quiet "$O/k.st" 'nothing: no such folder' tokenize --model "$W/nothing" \
    --input "$W/labelled.txt" --out "$O/k.st"
row model-is-file quiet "$O/k.st" 'afile: not a folder' tokenize --model "$W/afile" \
    --input "$W/labelled.txt" --out "$O/k.st"
row model-no-tokenizer quiet "$O/k.st" 'tiny_llama: no tokenizer there' tokenize \
    --model "$llama" --input "$W/labelled.txt" --out "$O/k.st"
row model-loop quiet "$O/k.st" 'loading the tokenizer: .*loop' tokenize --model "$W/loop" \
    --input "$W/labelled.txt" --out "$O/k.st"
row vocab-cut quiet "$O/k.st" 'cut_vocab/vocab.json: not valid JSON' tokenize \
    --model "$W/cut_vocab" --input "$W/labelled.txt" --out "$O/k.st"
row tokenizer-json-cut quiet "$O/k.st" 'cut_tokenizer_json/tokenizer.json: not valid JSON' \
    tokenize --model "$W/cut_tokenizer_json" --input "$W/labelled.txt" --out "$O/k.st"
row vocab-garbage quiet "$O/k.st" 'garbage_vocab/vocab.txt: not valid UTF-8' tokenize \
    --model "$W/garbage_vocab" --input "$W/labelled.txt" --out "$O/k.st"
row gguf-cut quiet "$O/k.st" 'cut_tokenizer.gguf: metadata "tokenizer.ggml.tokens"' tokenize \
    --model "$W/cut_tokenizer.gguf" --input "$W/labelled.txt" --out "$O/k.st"
row gguf-garbage quiet "$O/k.st" 'garbage.gguf: GGUF header: version' tokenize \
    --model "$W/garbage.gguf" --input "$W/labelled.txt" --out "$O/k.st"
row input-missing quiet "$O/k.st" 'cannot open .*nothing: No such file' $KM \
    --input "$W/nothing" --out "$O/k.st"
row input-dir quiet "$O/k.st" 'cannot read .*adir' $KM --input "$W/adir" --out "$O/k.st"
row input-loop quiet "$O/k.st" 'cannot open .*loop: Too many levels of symbolic links' $KM \
    --input "$W/loop" --out "$O/k.st"
row input-garbage quiet "$O/k.st" 'garbage.txt line [0-9]* holds a NUL byte' $KM \
    --input "$W/garbage.txt" --out "$O/k.st"
row input-nul quiet "$O/k.st" 'nul.txt line 1 holds a NUL byte' $KM --input "$W/nul.txt" \
    --out "$O/k.st"
row jsonl-cut quiet "$O/k.st" 'cut.jsonl line 2, column [0-9]*: not JSON' tokenize \
    --model "$smollm" --input "$W/cut.jsonl" --out "$O/k.st"
row jsonl-nul quiet "$O/k.st" 'nul.jsonl line 1, column [0-9]*: not JSON' tokenize \
    --model "$smollm" --input "$W/nul.jsonl" --out "$O/k.st"
row jsonl-not-text quiet "$O/k.st" 'not_text.jsonl line 1: "prompt" must be a string' tokenize \
    --model "$smollm" --input "$W/not_text.jsonl" --out "$O/k.st"
row out-under-file quiet "$W/afile/k.st" 'cannot create a file beside .*afile/k.st' $K \
    --out "$W/afile/k.st"
row out-under-proc quiet /proc/clora-never.st 'cannot create a file beside /proc/clora-never' \
    $K --out /proc/clora-never.st
row out-is-dir quiet "$W/existing_dir" 'cannot write .*existing_dir: Is a directory' $K \
    --out "$W/existing_dir"
row out-kept-on-bad-input quiet "$W/existing" 'garbage.txt line [0-9]* holds a NUL byte' $KM \
    --input "$W/garbage.txt" --out "$W/existing"

# encode
E="encode --model $gpt2_tok"
row unknown-option quiet - 'unknown option "--bogus"' $E --text hi --bogus
row missing-value quiet - 'option --text needs a value' $E --text
row extra-argument quiet - 'unexpected argument "hi"' $E hi
row model-missing quiet - 'nothing: no such folder' encode --model "$W/nothing" --text hi
row model-is-file quiet - 'afile: not a folder' encode --model "$W/afile" --text hi
row model-empty-dir quiet - 'empty_dir: no tokenizer there' encode --model "$W/empty_dir" \
    --text hi
row model-loop quiet - 'loading the tokenizer: .*loop' encode --model "$W/loop" --text hi
row gguf-cut quiet - 'cut_tokenizer.gguf: metadata "tokenizer.ggml.tokens"' encode \
    --model "$W/cut_tokenizer.gguf" --text hi
row gguf-version quiet - 'version 99 at byte 4' encode --model "$W/version99.gguf" --text hi
row gguf-many-kv quiet - '4611686018427387904 metadata entries' encode \
    --model "$W/many_kv.gguf" --text hi
row vocab-cut quiet - 'cut_vocab/vocab.json: not valid JSON' encode --model "$W/cut_vocab" \
    --text hi
row text-bad-utf8 quiet - '--text: the text is not valid UTF-8 at byte 1' $E \
    --text "$(printf 'a\377b')"
row -i "$W/nul_line.txt" stdin-nul any - 'line 2 holds a NUL byte' $E
row -i "$W/adir" stdin-dir quiet - 'cannot read standard input' $E

# decode
D="decode --model $gpt2_tok"
row unknown-option quiet - 'unknown option "--bogus"' $D --tokens 1 --bogus
row missing-value quiet - 'option --tokens needs a value' $D --tokens
row missing-required quiet - '--model and --tokens are required' decode --tokens 1
row flag-with-value quiet - 'unknown option "--no-newline=yes"' $D --tokens 1 --no-newline=yes
row tokens-empty quiet - '--tokens is empty' $D --tokens ''
row tokens-empty-item quiet - '--tokens expects ids like .*"1,,2" is not' $D --tokens 1,,2
row tokens-trailing-comma quiet - '--tokens expects ids like .*"1,2," is not' $D --tokens 1,2,
row tokens-not-number quiet - '--tokens expects ids like .*"one" is not' $D --tokens one
row tokens-too-big quiet - '--tokens expects ids like .*"4294967296" is not' $D \
    --tokens 4294967296
row tokens-past-vocab quiet - 'token id 50257 \(at 1\) is outside the vocabulary' $D \
    --tokens 15496,50257
row model-missing quiet - 'nothing: no such folder' decode --model "$W/nothing" --tokens 1
row model-is-file quiet - 'afile: not a folder' decode --model "$W/afile" --tokens 1
row gguf-garbage quiet - 'garbage.gguf: GGUF header: version' decode --model "$W/garbage.gguf" \
    --tokens 1
row gguf-many-tensors quiet - '4611686018427387904 tensors' decode \
    --model "$W/many_tensors.gguf" --tokens 1

# logits
L="logits --model $llama --tokens 1,2,3" l=$O/l.st
row unknown-option quiet "$l" 'unknown option "--bogus"' $L --out "$l" --bogus
row missing-value quiet - 'option --adapter needs a value' $L --out "$l" --adapter
row no-input quiet "$l" '--tokens or --prompt is required' logits --model "$llama" --out "$l"
row system-without-prompt quiet "$l" '--chat and --system go with --prompt' $L --system hi \
    --out "$l"
row adapter-name-alone quiet "$l" '--adapter-name goes with --adapter' $L --adapter-name x \
    --out "$l"
row adapter-name-unknown quiet "$l" 'the model has no adapter "nope"' \
    logits --model "$gpt2" --tokens 1,2 --adapter "$G/peft_options/0212/multi" \
    --adapter-name nope --out "$l"
row tokens-negative quiet "$l" '--tokens expects ids like .*"1,-2" is not' logits \
    --model "$llama" --tokens 1,-2 --out "$l"
row tokens-past-vocab quiet "$l" 'id 50 at position 1 is outside \[0, 50\)' logits \
    --model "$llama" --tokens 1,50 --out "$l"
row tokens-too-long quiet "$l" '17 tokens per sequence; the model has positions for 16' \
    logits --model "$gpt2" --tokens 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17 --out "$l"
row token-types-count quiet "$l" '--token-types has 2 entries for 3 tokens' logits \
    --model "$bert" --tokens 1,2,3 --token-types 0,1 --out "$l"
row token-types-past-vocab quiet "$l" '"token_type_embeddings": id 2 at position 2' logits \
    --model "$bert" --tokens 1,2,3 --token-types 0,1,2 --out "$l"
row classes-not-number quiet "$l" 'expects a non-negative integer, got "two"' $L --classes two \
    --out "$l"
row prompt-no-tokenizer quiet "$l" 'loading the tokenizer: .*tiny_llama: no tokenizer there' \
    logits --model "$llama" --prompt hello --out "$l"
row device-index quiet "$l" 'device selector "99": no device' $L --device 99 --out "$l"
row model-missing quiet "$l" 'cannot open .*nothing/config.json' logits --model "$W/nothing" \
    --tokens 1 --out "$l"
row model-garbage-gguf quiet "$l" 'garbage.gguf: GGUF header: version' logits \
    --model "$W/garbage.gguf" --tokens 1 --out "$l"
row model-cut-gguf quiet "$l" 'cut_meta.gguf: GGUF header: 20 tensors' logits \
    --model "$W/cut_meta.gguf" --tokens 1 --out "$l"
row model-cut-data quiet "$l" 'needs 55264 bytes, the file holds 54264' logits \
    --model "$W/m_cut_data" --tokens 1 --out "$l"
row model-nan quiet "$l" 'gpt2_nan/model.safetensors: tensor ".*" holds NaN at element 0' \
    logits --model "$W/gpt2_nan" --tokens 1 --out "$l"
row model-wrong-shape quiet "$l" 'parameter model.embed_tokens.weight is \(50, 32\)' logits \
    --model "$W/m_wide" --tokens 1 --out "$l"
row adapter-missing quiet "$l" 'cannot open .*nothing/adapter_config.json' $L \
    --adapter "$W/nothing" --out "$l"
row adapter-is-file quiet "$l" 'cannot open .*afile/adapter_config.json: Not a directory' $L \
    --adapter "$W/afile" --out "$l"
row adapter-cut-tensors quiet "$l" 'header length 3440 passes the end of the 3000-byte file' $L \
    --adapter "$W/a_cut_tensors" --out "$l"
row adapter-cut-config quiet "$l" 'a_cut_config/adapter_config.json: not valid JSON' $L \
    --adapter "$W/a_cut_config" --out "$l"
row adapter-no-config quiet "$l" 'cannot open .*a_no_config/adapter_config.json' $L \
    --adapter "$W/a_no_config" --out "$l"
row adapter-inf quiet "$l" 'a_inf/adapter_model.safetensors: tensor ".*" holds an infinity' $L \
    --adapter "$W/a_inf" --out "$l"
row adapter-rank quiet "$l" 'has rank 8 in adapter_config' $L --adapter "$W/a_rank" --out "$l"
row adapter-other-dims quiet "$l" 'has shape \(4, 40\), the model needs \(4, 37\)' $L \
    --adapter "$G/tiny_qwen2_lora" --out "$l"
row adapter-other-modules quiet "$l" 'module "transformer.h.0.attn.c_attn", which the model lacks' \
    logits --model "$bert" --tokens 1,2 --adapter "$G/tiny_gpt2_lora" --out "$l"
row out-under-file quiet "$W/afile/l.st" 'writing the output: cannot create a file beside' $L \
    --out "$W/afile/l.st"
row out-under-proc quiet /proc/clora-never.st 'writing the output: cannot create a file beside' \
    $L --out /proc/clora-never.st
row out-is-dir quiet "$W/existing_dir" 'writing the output: cannot write .*: Is a directory' $L \
    --out "$W/existing_dir"
row out-kept-on-bad-model quiet "$W/existing" 'holds NaN at element 0' logits \
    --model "$W/gpt2_nan" --tokens 1 --out "$W/existing"

# generate
R="generate --model $llama --tokens 1,2 --max-new 2"
row unknown-option quiet - 'unknown option "--bogus"' $R --bogus
row missing-value quiet - 'option --seed needs a value' $R --seed
row no-prompt quiet - '--prompt or --tokens is required' generate --model "$llama"
row max-new-zero quiet - '--max-new must be at least 1' generate --model "$llama" --tokens 1 \
    --max-new 0
row max-new-negative quiet - 'expects a non-negative integer, got "-4"' generate \
    --model "$llama" --tokens 1 --max-new -4
row temperature-negative quiet - '--temperature must be at least 0' $R --temperature -1
row temperature-nan quiet - 'expects a number, got "nan"' $R --temperature nan
row top-p-zero quiet - '--top-p must be 0..1' $R --top-p 0
row top-p-above-one quiet - '--top-p must be 0..1' $R --top-p 1.5
row top-k-negative quiet - 'expects a non-negative integer, got "-1"' $R --top-k -1
row eos-not-number quiet - 'expects a non-negative integer, got "eos"' $R --eos eos
row system-without-chat quiet - '--system needs --chat' generate --model "$gpt2_tok" \
    --prompt hi --system 'be brief'
row tokens-past-vocab quiet - 'token id 50 is outside the vocabulary \[0, 50\)' generate \
    --model "$llama" --tokens 3,50
row tokens-too-long quiet - '17 prompt tokens; the model takes at most 16' generate \
    --model "$gpt2" --tokens 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17
row device-name quiet - 'device selector "nosuchdevice" matches no device' $R \
    --device nosuchdevice
row model-missing quiet - 'cannot open .*nothing/config.json' generate --model "$W/nothing" \
    --tokens 1
row model-clora quiet - 'is not a GPT-2 or Llama-family language model' generate \
    --model "$base" --tokens 1
row model-gguf-cut quiet - 'cut_tensors.gguf: tensor .* pass the end of the' generate \
    --model "$W/cut_tensors.gguf" --tokens 1
row model-gguf-version quiet - 'version 99 at byte 4' generate --model "$W/version99.gguf" \
    --tokens 1
row model-gguf-many-tensors quiet - '4611686018427387904 tensors' generate \
    --model "$W/many_tensors.gguf" --tokens 1
row model-cut-config quiet - 'm_cut_config/config.json: not valid JSON' generate \
    --model "$W/m_cut_config" --tokens 1
row model-inf quiet - 'holds an infinity at element 10' generate --model "$W/m_inf" --tokens 1
row model-overflow quiet - 'tensor "model.embed_tokens.weight": shape overflows' generate \
    --model "$W/m_overflow" --tokens 1
row adapter-nan quiet - 'a_nan/adapter_model.safetensors: tensor ".*" holds NaN' $R \
    --adapter "$W/a_nan"
row adapter-garbage quiet - 'a_garbage/adapter_model.safetensors: safetensors: header length' \
    $R --adapter "$W/a_garbage"
row adapter-overflow quiet - 'q_proj.lora_A.weight": shape overflows' $R --adapter "$W/a_overflow"
row adapter-other-dims quiet - 'has shape \(4, 40\), the model needs \(4, 37\)' $R \
    --adapter "$G/tiny_qwen2_lora"
row adapter-other-modules quiet - 'is for module "model.layers.0.mlp.down_proj", which the' \
    generate --model "$gpt2" --tokens 1 --adapter "$lora"

# merge
M="merge --model $llama" MA="--adapter $lora"
row unknown-option quiet "$O/m" 'unknown option "--bogus"' $M $MA --out "$O/m" --bogus
row missing-value quiet - 'option --out needs a value' $M $MA --out
row out-dtype-unknown quiet "$O/m" '--out-dtype "f8" is not one of stored f32 f16' $M $MA \
    --out "$O/m" --out-dtype f8
row device-index quiet "$O/m" 'device selector "99": no device' $M $MA --out "$O/m" --device 99
row model-is-file quiet "$O/m" 'cannot open .*afile/config.json: Not a directory' \
    merge --model "$W/afile" $MA --out "$O/m"
row model-cut-header quiet "$O/m" 'header length 2864 passes the end of the 100-byte file' \
    merge --model "$W/m_cut_header" $MA --out "$O/m"
row model-garbage-gguf quiet "$O/m" 'garbage.gguf: GGUF header: version' \
    merge --model "$W/garbage.gguf" $MA --out "$O/m"
row model-nan quiet "$O/m" 'tensor "lm_head.weight" holds NaN at element 0' \
    merge --model "$W/m_nan" $MA --out "$O/m"
row adapter-missing quiet "$O/m" 'cannot open .*nothing/adapter_config.json' \
    $M --adapter "$W/nothing" --out "$O/m"
row adapter-is-file quiet "$O/m" 'cannot open .*afile/adapter_config.json: Not a directory' \
    $M --adapter "$W/afile" --out "$O/m"
row adapter-empty-dir quiet "$O/m" 'cannot open .*empty_dir/adapter_config.json' \
    $M --adapter "$W/empty_dir" --out "$O/m"
row adapter-loop quiet "$O/m" 'loop/adapter_config.json: Too many levels of symbolic links' \
    $M --adapter "$W/loop" --out "$O/m"
row adapter-no-tensors quiet "$O/m" 'cannot open .*a_no_tensors/adapter_model.safetensors' \
    $M --adapter "$W/a_no_tensors" --out "$O/m"
row adapter-cut-config quiet "$O/m" 'a_cut_config/adapter_config.json: not valid JSON' \
    $M --adapter "$W/a_cut_config" --out "$O/m"
row adapter-inf quiet "$O/m" 'a_inf/adapter_model.safetensors: tensor ".*" holds an infinity' \
    $M --adapter "$W/a_inf" --out "$O/m"
row adapter-rank quiet "$O/m" 'has rank 8 in adapter_config' $M --adapter "$W/a_rank" \
    --out "$O/m"
row adapter-other-dims quiet "$O/m" 'has shape \(4, 40\), the model needs \(4, 37\)' \
    $M --adapter "$G/tiny_qwen2_lora" --out "$O/m"
row adapter-other-modules quiet "$O/m" 'names module "classifier", which the model lacks' \
    merge --model "$gpt2" --adapter "$G/tiny_bert_lora" --out "$O/m"
row out-under-proc quiet /proc/clora-never 'saving the merged model: cannot create folder' \
    $M $MA --out /proc/clora-never
row out-is-file quiet "$W/existing" 'existing exists and is not a folder' $M $MA \
    --out "$W/existing"
row out-kept-on-bad-adapter quiet "$W/existing_dir" 'holds NaN' $M --adapter "$W/a_nan" \
    --out "$W/existing_dir"
PO=$G/peft_options/0212
row no-output quiet - 'give --out, --adapter-out or both' $M $MA
row name-and-combine quiet "$O/m" '--adapter-name and --combine exclude each other' \
    merge --model "$gpt2" --adapter "$PO/combine" --adapter-name second --combine second:1 \
    --out "$O/m"
row combine-entry quiet "$O/m" '--combine entry "second" is not NAME:WEIGHT' \
    merge --model "$gpt2" --adapter "$PO/combine" --combine second --out "$O/m"
row combine-weight quiet "$O/m" '--combine entry "second:x" is not NAME:WEIGHT' \
    merge --model "$gpt2" --adapter "$PO/combine" --combine second:x --out "$O/m"
row combine-unknown quiet "$O/m" 'the model has no adapter "nope"' \
    merge --model "$gpt2" --adapter "$PO/combine" --combine default:0.5,nope:0.5 --out "$O/m"
row combine-twice quiet "$O/m" 'adapter "second" is listed twice' \
    merge --model "$gpt2" --adapter "$PO/combine" --combine second:0.5,second:0.5 --out "$O/m"
row combine-linear-ranks quiet "$O/m" 'combining linearly needs equal ranks' \
    merge --model "$gpt2" --adapter "$PO/multi" --combine default:0.5,other:0.5 \
    --combination linear --out "$O/m"
row combine-kind quiet "$O/m" '--combination "svd" is not one of linear cat' \
    merge --model "$gpt2" --adapter "$PO/combine" --combine second:1 --combination svd \
    --out "$O/m"
row adapter-name-unknown quiet "$O/m" 'the model has no adapter "nope"' \
    merge --model "$gpt2" --adapter "$PO/multi" --adapter-name nope --out "$O/m"
row adapter-out-kept quiet "$W/existing" 'existing exists and is not a folder' \
    merge --model "$gpt2" --adapter "$PO/multi" --adapter-out "$W/existing"

# info (it shows what it can of a file, then refuses: stdout may have the part it read)
row no-path quiet - 'PATH is required' info
row extra-argument quiet - 'unexpected argument ".*tiny_llama_lora"' info "$llama" "$lora"
row unknown-option quiet - 'unknown option "--bogus"' info --bogus "$llama"
row empty-dir quiet - 'empty_dir holds neither adapter_config.json nor config.json' \
    info "$W/empty_dir"
row loop quiet - 'loop: no such file or folder' info "$W/loop"
row empty-file any - 'the file is 0 bytes; it needs at least 8' info "$W/empty.safetensors"
row garbage any - 'garbage.safetensors: safetensors: header length [0-9]* exceeds' \
    info "$W/garbage.safetensors"
row long-header any - 'header length 4294967296 exceeds the limit' \
    info "$W/long_header.safetensors"
row short-file any - 'header length 1000 passes the end of the 16-byte file' \
    info "$W/short_file.safetensors"
row max-header any - 'header length 18446744073709551615 exceeds the limit' \
    info "$W/max_header.safetensors"
row not-json any - 'header is not valid JSON' info "$W/not_json.safetensors"
row past-end any - 'tensor "labels": 2 elements of I32 need 8 bytes, data_offsets give 4080' \
    info "$W/past_end.safetensors"
row bad-dtype any - 'tensor "inputs" has unknown dtype "F99"' info "$W/bad_dtype.safetensors"
row cut-data any - 'needs 55264 bytes, the file holds 54264 after the header' \
    info "$W/cut_data.safetensors"
row gguf-cut-meta quiet - 'cut_meta.gguf: GGUF header: 20 tensors' info "$W/cut_meta.gguf"
row gguf-garbage quiet - 'garbage.gguf: GGUF header: version' info "$W/garbage.gguf"
row gguf-version quiet - 'version 99 at byte 4' info "$W/version99.gguf"
row gguf-many-kv quiet - '4611686018427387904 metadata entries' info "$W/many_kv.gguf"
row gguf-many-tensors quiet - '4611686018427387904 tensors' info "$W/many_tensors.gguf"
row model-cut-config quiet - 'm_cut_config/config.json: not valid JSON' info "$W/m_cut_config"
row model-weights-dir any - 'm_dir_weights/model.safetensors is not a regular file' \
    info "$W/m_dir_weights"
row model-no-weights any - 'm_no_weights/model.safetensors: no such file, nor .*index.json' \
    info "$W/m_no_weights"
row model-cut-data any - 'needs 55264 bytes, the file holds 54264 after the header' \
    info "$W/m_cut_data"
row adapter-cut-config quiet - 'a_cut_config/adapter_config.json: not valid JSON' \
    info "$W/a_cut_config"
row adapter-rank any - 'invalid adapter: .*has rank 8 in adapter_config' info "$W/a_rank"
row adapter-overflow any - 'q_proj.lora_A.weight": shape overflows' info "$W/a_overflow"

# devices
row extra-argument quiet - 'unexpected argument "all"' devices all
row unknown-option quiet - 'unknown option "--device"' devices --device 0
row -e CLORA_DEVICE=99 default-device-index any - 'opening the default device: CLORA_DEVICE "99"' \
    devices

# selfcheck (small shapes, no timing, so that what passes the parser fails fast)
S="selfcheck --rows 4 --in 4 --out 4 --reps 0"
row unknown-option quiet - 'unknown option "--bogus"' $S --bogus
row missing-value quiet - 'option --rank needs a value' $S --rank
row extra-argument quiet - 'unexpected argument "now"' $S now
row rows-zero quiet - '--rows must be at least 1' selfcheck --rows 0
row in-negative quiet - 'option --in expects a non-negative integer, got "-4"' selfcheck --in -4
row out-not-number quiet - 'option --out expects a non-negative integer, got "wide"' \
    selfcheck --out wide
row reps-float quiet - 'option --reps expects a non-negative integer, got "2.5"' \
    selfcheck --reps 2.5
row rank-zero any - 'rank r = 0 \(from lora_a\); 1 <= r <= 256' $S --rank 0
row rank-too-big any - 'rank r = 257 \(from lora_a\); 1 <= r <= 256' $S --rank 257
row dropout-one any - 'dropout is 1; it must be in \[0, 1\)' $S --dropout 1
row dropout-nan quiet - 'option --dropout expects a number, got "nan"' $S --dropout nan
row rows-overflow any - 'shape overflows the address space' selfcheck \
    --rows 4611686018427387904 --in 4 --out 4 --reps 0
row device-index quiet - 'device selector "99": no device' $S --device 99
row -e "CLORA_TUNING=$W/cut_tuning.json" tuning-file-cut quiet - 'cut_tuning.json: not JSON' $S
row -e "CLORA_TUNING=$W/garbage_tuning.json" tuning-file-garbage quiet - \
    'garbage_tuning.json: not JSON' $S
row -e "CLORA_TUNING=$W/adir" tuning-file-dir quiet - 'adir is not a regular file' $S

# bench (--quick and --only keep it to the one measurement a row is about)
row unknown-option quiet - 'unknown option "--bogus"' bench --quick --bogus
row missing-value quiet - 'option --only needs a value' bench --quick --only
row extra-argument quiet - 'unexpected argument "fast"' bench fast
row reps-negative quiet - 'option --reps expects a non-negative integer, got "-1"' \
    bench --quick --reps -1
row reps-not-number quiet - 'option --reps expects a non-negative integer, got "many"' \
    bench --reps many
row device-index quiet - 'device selector "99": no device' bench --quick --only lora_forward \
    --device 99
row only-unknown any - '--only nosuch ran no measurement' bench --quick --only nosuch
row only-needs-llama any - '--only llama_decode ran no measurement' bench --quick \
    --only llama_decode
row llama-missing any - 'cannot open .*nothing/config.json' bench --quick --only llama \
    --llama "$W/nothing"
row llama-garbage any - 'garbage.gguf: GGUF header: version' bench --quick --only llama \
    --llama "$W/garbage.gguf"

# tune (every row fails before CLBlast's tuners would start)
row m-not-multiple quiet - '--m takes positive multiples of 128, not 100' tune --m 100
row n-zero quiet - '--n takes positive multiples of 128, not 0' tune --n 0
row k-not-number quiet - 'option --k expects a non-negative integer, got "big"' tune --k big
row missing-value quiet - 'option --from needs a value' tune --from
row extra-argument quiet - 'unexpected argument "now"' tune now
row device-index quiet - 'device selector "99": no device' tune --from "$W/empty_dir" \
    --device 99
row from-missing any "$O/tuning.json" 'no clblast_tuner_xgemm results .* in .*nothing' \
    tune --from "$W/nothing" --output "$O/tuning.json"
row from-is-file any "$O/tuning.json" 'no clblast_tuner_xgemm results .* in .*afile' \
    tune --from "$W/afile" --output "$O/tuning.json"
row keep-under-file any "$W/afile/keep" 'cannot create .*afile/keep: Not a directory' \
    tune --keep "$W/afile/keep"
row keep-under-proc any /proc/clora-never 'cannot create /proc/clora-never' \
    tune --keep /proc/clora-never

# unreadable for root too: reading /proc/self/mem from its start fails (EIO), and a
# symlink loop (above) cannot be opened
row proc-mem-data quiet "$O/t" '/proc/self/mem: safetensors: the file is 0 bytes' \
    $T --data /proc/self/mem --out "$O/t"
row proc-mem-input quiet "$O/k.st" 'cannot read /proc/self/mem' $KM --input /proc/self/mem \
    --out "$O/k.st"
row -e CLORA_TUNING=/proc/self/mem proc-mem-tuning quiet - '/proc/self/mem: not JSON' $S

# unreadable files, where chmod 000 stops the reader
if [ -z "$readable_by_all" ]; then
    row data-unreadable quiet "$O/t" 'cannot open .*locked.safetensors: Permission denied' \
        $T --data "$W/locked.safetensors" --out "$O/t"
    row model-unreadable quiet "$O/m" 'locked/model.safetensors: Permission denied' \
        merge --model "$W/m_locked" $MA --out "$O/m"
    row input-unreadable quiet "$O/k.st" 'cannot open .*locked.txt: Permission denied' $KM \
        --input "$W/locked.txt" --out "$O/k.st"
    row unreadable any - 'locked.safetensors: .*Permission denied' \
        info "$W/locked.safetensors"
fi

# ---- the summary -------------------------------------------------------------------------

[ -n "$readable_by_all" ] && echo "skipped: the chmod 000 rows: $readable_by_all"
echo "bad_input_check: $rows rows run, $passed passed, $((rows - passed)) failed \
in $(($(date +%s) - started)) s"
printf 'cases per command:'
for c in $commands; do eval "printf ' %s %s' $c \$cases_$c"; done
echo
if [ -n "$failures" ]; then
    cat "$work/failures"
    exit 1
fi
