#!/bin/sh
# The `clora` command end to end: a short demo, then info, merge and train
# on what it saved; and bad paths and files, each of which must give a
# one-line error, a non-zero exit, and no output file.
#   cli_check.sh CLORA
set -u
clora=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
# shellcheck source=tests/tiny_lm.sh
. "$(dirname "$0")/tiny_lm.sh"

# expect_error EXPECTED-TEXT COMMAND...: non-zero exit, one stderr line holding the text
expect_error() {
    text=$1
    shift
    if "$@" > "$work/out" 2> "$work/err"; then fail "succeeded: $*"; fi
    [ "$(wc -l < "$work/err")" -eq 1 ] || { cat "$work/err"; fail "not one line of error: $*"; }
    grep -q -- "$text" "$work/err" || { cat "$work/err"; fail "error lacks \"$text\": $*"; }
    echo "ok (error): $*"
}

"$clora" demo --steps-a 80 --steps-b 80 --out "$work/demo" > "$work/demo.log" 2>&1 \
    || { cat "$work/demo.log"; fail "clora demo"; }
grep -q "the base is intact" "$work/demo.log" || fail "demo: base not reported intact"
grep -q "Total trainable parameters after: 0" "$work/demo.log" || fail "demo: no freeze report"
for f in base/config.json base/model.safetensors adapter/adapter_config.json \
         adapter/adapter_model.safetensors loss.csv task_b_train.safetensors; do
    [ -f "$work/demo/$f" ] || fail "demo did not write $f"
done
head -1 "$work/demo/loss.csv" | grep -q "phase,step,loss,lr" || fail "loss.csv header"
echo "ok: demo"

"$clora" info "$work/demo/adapter" | grep -q "base_model.model.fc1.lora_A.weight" || fail "info adapter"
"$clora" info "$work/demo/base" | grep -q "head: linear 256 -> 10" || fail "info model"
"$clora" info "$work/demo/loss.csv" > /dev/null 2>&1 && fail "info on a CSV file succeeded"
# a model folder whose tree contradicts its tensors: shown, and refused as the loader refuses it
cp -r "$work/demo/base" "$work/bad_base"
sed 's/"out_features": *10\b/"out_features": 11/' "$work/demo/base/config.json" \
    > "$work/bad_base/config.json"
cmp -s "$work/demo/base/config.json" "$work/bad_base/config.json" && fail "info: config not edited"
"$clora" info "$work/bad_base" > "$work/info_out" 2> "$work/info_err" \
    && fail "info: a folder the loader refuses passed"
grep -q "head: linear 256 -> 11" "$work/info_out" || fail "info: the refused folder not shown"
grep -q "invalid model: .*head.weight" "$work/info_err" || fail "info: no reason given"
rm -r "$work/bad_base"
echo "ok: info"

"$clora" merge --model "$work/demo/base" --adapter "$work/demo/adapter" --out "$work/merged" \
    > /dev/null || fail "merge"
[ -f "$work/merged/model.safetensors" ] || fail "merge wrote no model"
echo "ok: merge"

"$clora" train --model "$work/demo/base" --data "$work/demo/task_b_train.safetensors" \
    --out "$work/trained" --steps 20 --batch-size 16 --targets fc1,head --rank 2 \
    --log "$work/train.csv" > "$work/train.log" || { cat "$work/train.log"; fail "train"; }
grep -q "accuracy: " "$work/train.log" || fail "train printed no accuracy"
"$clora" info "$work/trained" | grep -q '"fc1","head"' || fail "trained adapter targets"
echo "ok: train"

# transformers: a small BERT given the first 60 words of the test vocabulary
golden=$(dirname "$0")/golden
mkdir "$work/bert"
cp "$golden/tiny_bert/config.json" "$golden/tiny_bert/model.safetensors" "$work/bert/"
head -60 "$golden/wordpiece_vocab.txt" > "$work/bert/vocab.txt"
printf '{"do_lower_case": true, "model_max_length": 16}\n' > "$work/bert/tokenizer_config.json"
{
    for i in 1 2 3 4 5 6 7 8; do
        printf 'animal\tThe quick brown fox, the lazy dog!\n'
        printf 'greeting\tHello world, hello me.\n'
    done
} > "$work/text.txt"
"$clora" tokenize --model "$work/bert" --input "$work/text.txt" --out "$work/text.safetensors" \
    > "$work/tokenize.log" || { cat "$work/tokenize.log"; fail "tokenize"; }
grep -q "0=animal (8) 1=greeting (8)" "$work/tokenize.log" || fail "tokenize label counts"
"$clora" info "$work/text.safetensors" | grep -q "attention_mask" || fail "tokenize: no mask"
"$clora" train --model "$work/bert" --data "$work/text.safetensors" --out "$work/bert_lora" \
    --epochs 4 --batch-size 4 --lr 0.01 > "$work/bert_train.log" \
    || { cat "$work/bert_train.log"; fail "train BERT"; }
grep -q "on 4 layers (query, value)" "$work/bert_train.log" || fail "BERT default targets"
grep -q "accuracy: .* -> 100.00%" "$work/bert_train.log" || { cat "$work/bert_train.log"; fail "BERT did not learn"; }
grep -q "tokens/s" "$work/bert_train.log" || fail "train: no tokens/s"
"$clora" logits --model "$work/bert" --adapter "$work/bert_lora" --prompt "hello world" \
    --out "$work/bert_logits.safetensors" > "$work/logits.log" || fail "logits --prompt"
grep -q "logits (1, 2) for 4 tokens" "$work/logits.log" || { cat "$work/logits.log"; fail "logits shape"; }
grep -q "classes, top 5: 1 " "$work/logits.log" || { cat "$work/logits.log"; fail "logits class"; }
# BertForSequenceClassification runs its own head (the pooler on [CLS], then
# classifier): PEFT's logits with its SEQ_CLS adapter (make_bert_heads_golden.py);
# all-linear adapts bert.pooler.dense too and leaves the checkpoint's classifier frozen
"$clora" logits --model "$golden/tiny_bert_seqcls" --adapter "$golden/tiny_bert_seqcls_lora" \
    --tokens 1,4,35,31,38,35,48 --out "$work/seqcls.safetensors" > "$work/seqcls.log" \
    || fail "logits BertForSequenceClassification"
grep -q "classes, top 5: 0 (1.0739) 2 (-0.4320) 1 (-1.8015)" "$work/seqcls.log" \
    || { cat "$work/seqcls.log"; fail "BertForSequenceClassification logits"; }
mkdir "$work/seqcls"
cp "$golden/tiny_bert_seqcls/config.json" "$golden/tiny_bert_seqcls/model.safetensors" \
    "$work/bert/vocab.txt" "$work/bert/tokenizer_config.json" "$work/seqcls/"
"$clora" train --model "$work/seqcls" --data "$work/text.safetensors" --out "$work/seqcls_lora" \
    --targets all-linear --epochs 4 --batch-size 4 --lr 0.01 > "$work/seqcls_train.log" \
    || { cat "$work/seqcls_train.log"; fail "train BertForSequenceClassification"; }
grep -q "on 13 layers" "$work/seqcls_train.log" || fail "all-linear on the pooler head"
grep -q "trained in full" "$work/seqcls_train.log" && fail "the checkpoint's classifier trained"
grep -q '"bert.pooler.dense"' "$work/seqcls_lora/adapter_config.json" || fail "no bert.pooler.dense"
expect_error "was made for mean pooling" "$clora" logits --model "$golden/tiny_bert_seqcls" \
    --adapter "$golden/tiny_bert_lora" --tokens 1,2 --out "$work/never16"
expect_error "was made for BertForSequenceClassification's head" "$clora" logits \
    --model "$golden/tiny_bert" --adapter "$golden/tiny_bert_seqcls_lora" --tokens 1,2 \
    --out "$work/never16"
"$clora" generate --model "$golden/tiny_gpt2" --tokens 1,2,3 --max-new 4 > "$work/gen" 2>/dev/null \
    || fail "generate"
grep -Eq '^[0-9]+(,[0-9]+){3}$' "$work/gen" || { cat "$work/gen"; fail "generate output"; }
"$clora" generate --model "$golden/tiny_gpt2" --adapter "$golden/tiny_gpt2_lora" --tokens 1,2 \
    --max-new 30 --temperature 1 --top-k 5 --seed 7 > "$work/gen" 2> "$work/gen.err" \
    || fail "generate top-k"
grep -q "at the model's longest sequence" "$work/gen.err" || fail "generate: no stop at 16 tokens"
# Gradient checkpointing recomputes each block in backward: the same bytes,
# dropout on (GPT-2's own dropout and LoRA's)
for ck in "" --checkpointing; do
    "$clora" train --model "$golden/tiny_gpt2" --data "$golden/next_token_24x10.safetensors" \
        --out "$work/ck$ck" --steps 3 --batch-size 4 --dropout 0.3 $ck > "$work/ck.log" 2>&1 \
        || { cat "$work/ck.log"; fail "train $ck"; }
done
cmp -s "$work/ck/adapter_model.safetensors" "$work/ck--checkpointing/adapter_model.safetensors" \
    || fail "--checkpointing changed the adapter"
grep -q "gradient checkpointing" "$work/ck.log" || fail "--checkpointing not reported"
echo "ok: --checkpointing writes the same adapter"

# PEFT's bias and layers_to_transform: biases train and travel with the
# adapter, only block 1 is adapted; a folder of two named adapters merges
# either one, or a combination
"$clora" train --model "$golden/tiny_gpt2" --data "$golden/next_token_24x10.safetensors" \
    --out "$work/bias_all" --steps 3 --batch-size 4 --targets c_attn,c_fc --layers 1 \
    --layers-pattern h --bias all > "$work/bias.log" 2>&1 || { cat "$work/bias.log"; fail "train --bias"; }
grep -q '"bias": "all"' "$work/bias_all/adapter_config.json" || fail "--bias all: not in the config"
"$clora" info "$work/bias_all" > "$work/bias.info" || fail "info on a bias adapter"
grep -q 'transformer.ln_f.bias' "$work/bias.info" || fail "--bias all: ln_f's bias not saved"
grep -q 'h.0.attn.c_attn.lora_A' "$work/bias.info" && fail "--layers 1: block 0 adapted"
grep -q 'h.1.mlp.c_fc.lora_A' "$work/bias.info" || fail "--layers 1: block 1 not adapted"
mkdir -p "$work/two/second"
cp "$work/ck/"adapter_* "$work/two/" && cp "$work/bias_all/"adapter_* "$work/two/second/"
"$clora" info "$work/two" | grep -q 'named adapter "second"' || fail "info: named adapter"
"$clora" logits --model "$golden/tiny_gpt2" --adapter "$work/two" --adapter-name second \
    --tokens 1,2,3 --out "$work/two_l.st" > /dev/null || fail "logits --adapter-name"
"$clora" logits --model "$golden/tiny_gpt2" --adapter "$work/bias_all" --tokens 1,2,3 \
    --out "$work/one_l.st" > /dev/null || fail "logits of the bias adapter"
cmp -s "$work/two_l.st" "$work/one_l.st" || fail "--adapter-name second ran another adapter"
"$clora" merge --model "$golden/tiny_gpt2" --adapter "$work/two" --combine default:0.5,second:2 \
    --adapter-out "$work/mix" --out "$work/mix_model" > /dev/null || fail "merge --combine"
grep -q '"r": 16' "$work/mix/adapter_config.json" || fail "--combine cat: rank not 8 + 8"
echo "ok: --bias, --layers, named adapters, --combine"

# An Embedding target gets PEFT's embedding LoRA, saved under its key names
"$clora" train --model "$golden/tiny_gpt2" --data "$golden/next_token_24x10.safetensors" \
    --out "$work/wte_lora" --steps 3 --batch-size 4 --targets wte,c_attn > "$work/wte.log" 2>&1 \
    || { cat "$work/wte.log"; fail "train --targets wte,c_attn"; }
grep -q "transformer.wte.lora_embedding_B" "$work/wte_lora/adapter_model.safetensors" \
    || fail "train --targets wte: no lora_embedding_B"
"$clora" logits --model "$golden/tiny_gpt2" --adapter "$work/wte_lora" --tokens 3,1,4 \
    --out "$work/wte_logits.safetensors" > /dev/null 2>&1 || fail "logits with an embedding adapter"
echo "ok: --targets wte trains embedding LoRA"

# A Llama folder trains (PEFT's default targets q_proj and v_proj), and the
# adapter generates through the cache as it does recomputing
"$clora" train --model "$golden/tiny_llama" --data "$golden/next_token_24x10.safetensors" \
    --out "$work/llama_lora" --steps 20 --lr 0.01 > "$work/llama_train.log" 2>&1 \
    || { cat "$work/llama_train.log"; fail "train a Llama folder"; }
grep -q 'self_attn.q_proj"' "$work/llama_lora/adapter_config.json" || fail "train Llama: no q_proj target"
grep -q 'self_attn.v_proj"' "$work/llama_lora/adapter_config.json" || fail "train Llama: no v_proj target"
"$clora" generate --model "$golden/tiny_llama" --adapter "$work/llama_lora" --tokens 3,1,4 \
    --max-new 8 --print-ids > "$work/gen_a" 2>/dev/null || fail "generate with a Llama adapter"
"$clora" generate --model "$golden/tiny_llama" --adapter "$work/llama_lora" --tokens 3,1,4 \
    --max-new 8 --print-ids --no-cache > "$work/gen_b" 2>/dev/null || fail "generate --no-cache"
cmp -s "$work/gen_a" "$work/gen_b" || fail "Llama adapter: cached and recomputed ids differ"
# Llama from a GGUF file: the key/value cache gives the ids recomputation gives
"$clora" generate --model "$golden/gguf_llama/llama-Q8_0.gguf" --tokens 3,1,4,1,5 --max-new 12 \
    --print-ids > "$work/gen_cached" 2> "$work/gen.err" || { cat "$work/gen.err"; fail "generate GGUF"; }
grep -q "decode 11 tokens" "$work/gen.err" || { cat "$work/gen.err"; fail "generate: decode count"; }
"$clora" generate --model "$golden/gguf_llama/llama-Q8_0.gguf" --tokens 3,1,4,1,5 --max-new 12 \
    --print-ids --no-cache > "$work/gen_full" 2> "$work/gen.err" || fail "generate --no-cache"
grep -q "recomputing each step" "$work/gen.err" || fail "generate --no-cache: not recomputing"
cmp -s "$work/gen_cached" "$work/gen_full" || { cat "$work/gen_cached" "$work/gen_full"; \
    fail "generate: cached and recomputed ids differ"; }
"$clora" generate --model "$golden/gguf_llama/llama-Q8_0.gguf" --tokens 3,1,4 --max-new 6 \
    --temperature 0.8 --top-p 0.9 --seed 3 --print-ids > "$work/gen_a" 2>/dev/null \
    || fail "generate sampling"
"$clora" generate --model "$golden/gguf_llama/llama-Q8_0.gguf" --tokens 3,1,4 --max-new 6 \
    --temperature 0.8 --top-p 0.9 --seed 3 --print-ids > "$work/gen_b" 2>/dev/null \
    || fail "generate sampling"
cmp -s "$work/gen_a" "$work/gen_b" || fail "generate: the same seed gave other tokens"
echo "ok: tokenize, train, logits, generate on transformers"
# Packed base weights: a Q4_1 file kept packed and loaded as float32 generates
# the same ids and trains the same adapter, byte for byte; merging into the
# packed weights is refused unless --out-dtype loads them as float32.
q41=$golden/gguf_llama/llama-Q4_1.gguf
for base in stored f32; do
    "$clora" generate --model "$q41" --base-dtype $base --tokens 3,1,4,1,5 --max-new 8 \
        --print-ids > "$work/gen_$base" 2>/dev/null || fail "generate --base-dtype $base"
    "$clora" train --model "$q41" --base-dtype $base --data "$golden/next_token_24x10.safetensors" \
        --steps 3 --batch-size 8 --lr 0.01 --out "$work/q41_$base" > "$work/q41.log" 2>&1 \
        || { cat "$work/q41.log"; fail "train --base-dtype $base"; }
done
cmp -s "$work/gen_stored" "$work/gen_f32" || fail "packed and float32 weights generate other ids"
cmp -s "$work/q41_stored/adapter_model.safetensors" "$work/q41_f32/adapter_model.safetensors" \
    || fail "packed and float32 weights train other adapters"
expect_error "clora merge --out-dtype f16" "$clora" merge --model "$q41" \
    --adapter "$work/q41_stored" --out "$work/never"
[ ! -e "$work/never" ] || fail "a refused merge wrote its folder"
"$clora" merge --model "$q41" --adapter "$work/q41_stored" --out "$work/q41_merged" \
    --out-dtype f16 > /dev/null || fail "merge --out-dtype f16"
"$clora" info "$work/q41_merged" | grep -Eq "mlp.down_proj.weight +F16" || fail "merged: not F16"
"$clora" logits --model "$work/q41_merged" --tokens 3,1,4 --out "$work/q41_logits.safetensors" \
    > /dev/null 2>&1 \
    || fail "logits of the merged F16 model"
expect_error "--base-dtype" "$clora" generate --model "$q41" --base-dtype q4_k --tokens 3
echo "ok: packed base weights"

# GGUF files: metadata of every type and tensors of every block type. These
# test files name an architecture clora does not load: info shows them whole,
# then says so and exits non-zero
"$clora" info "$golden/gguf/metadata.gguf" > "$work/gguf_info" 2> "$work/gguf_err" \
    && fail "info GGUF: a model of an unknown architecture passed"
grep -q 'invalid model file: .*general.architecture "clora-test"' "$work/gguf_err" \
    || fail "info GGUF: the reason"
grep -q "version 3, alignment 32" "$work/gguf_info" || fail "info GGUF: version"
grep -Eq "test.uint64 +uint64 +9223372036854775813" "$work/gguf_info" || fail "info GGUF: uint64"
grep -q '\[5 × int32: 1, -2, 3 …\]' "$work/gguf_info" || fail "info GGUF: array"
grep -qF '"012345678901234567890123456789012345678901234567890123456789"… (300 bytes)' \
    "$work/gguf_info" || fail "info GGUF: long string"
cp "$golden/gguf/tensors.gguf" "$work/model.bin" # found by its magic
"$clora" info "$work/model.bin" > "$work/gguf_info" 2> /dev/null
grep -q "GGUF file" "$work/gguf_info" || fail "info GGUF by magic"
grep -Eq "q6_k +Q6_K +\(3, 512\) +1,260 bytes" "$work/gguf_info" || fail "info GGUF: tensor"
grep -q "12 tensors, 4,422 parameters" "$work/gguf_info" || fail "info GGUF: totals"
"$clora" info "$golden/gguf_llama/llama-Q4_1.gguf" | grep -q "as a model: clora loads it" \
    || fail "info GGUF: a model clora loads"
"$clora" info "$golden/smollm2_tokenizer.gguf" | grep -q "as a tokenizer: clora loads it" \
    || fail "info GGUF: a tokenizer clora loads"
echo "ok: info on GGUF files"

# encode and decode: a GGUF tokenizer and a GPT-2 folder, lines and --text
smollm=$golden/smollm2_tokenizer.gguf
[ "$("$clora" encode --model "$smollm" --text " 42<|im_start|>")" = "216,36,34,1" ] \
    || fail "encode --text on a GGUF file"
printf 'Hello world\n\nsecond  line\n' | "$clora" encode --model "$golden/gpt2_tokenizer" \
    > "$work/ids.txt" || fail "encode lines"
[ "$(cat "$work/ids.txt")" = "$(printf '15496,995\n\n12227,220,1627')" ] \
    || { cat "$work/ids.txt"; fail "encode: one line of ids per line"; }
text=$(printf 'Tabs\tand  spaces, caf\303\251, \344\275\240\345\245\275 \360\237\230\200!')
ids=$("$clora" encode --model "$smollm" --text "$text") || fail "encode for the round trip"
[ "$("$clora" decode --model "$smollm" --tokens "$ids")" = "$text" ] || fail "decode round trip"
"$clora" encode --model "$golden/mini_llama-bpe.gguf" --add-special --text "hi" | grep -q '^3256,' \
    || fail "encode --add-special: BOS first"
"$clora" decode --model "$golden/gpt2_tokenizer" --tokens 15496,50256,995 --skip-special \
    --no-newline > "$work/decoded" || fail "decode --skip-special"
[ "$(cat "$work/decoded")" = "Hello world" ] || fail "decode --skip-special text"
"$clora" encode --model "$smollm" --chat --text "Hi" | grep -q '^1,9690,198,' || fail "encode --chat"
echo "ok: encode and decode"

# tokenize: CSV and TSV (quoting, column options), JSON Lines of each kind
# through SmolLM2's tokenizer with the scored tokens checked against encode,
# truncation, and training on the result
# tensor_ints FILE NAME: the I32 values of tensor NAME of a safetensors file, comma-separated
tensor_ints() {
    n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
    set -- "$1" $(head -c $((8 + n)) "$1" | tail -c "$n" \
        | sed -n "s/.*\"$2\":{[^}]*\"data_offsets\":\[\([0-9]*\),\([0-9]*\)\].*/\1 \2/p")
    tail -c +$((8 + n + $2 + 1)) "$1" | head -c $(($3 - $2)) | od -An -t d4 -v \
        | tr -s ' ' '\n' | sed '/^$/d' | paste -sd, -
}
# scored FILE: the labels other than -100, comma-separated
scored() { tensor_ints "$1" labels | tr , '\n' | grep -v '^-100$' | paste -sd, -; }
{
    printf 'id,sentence,class\r\n1,"The fox, the ""lazy"" dog",animal\r\n'
    printf '2,"Hello\r\nworld",greeting\r\n3,the dog,animal\r\n'
} > "$work/quoted.csv"
"$clora" tokenize --model "$work/bert" --input "$work/quoted.csv" --text-column sentence \
    --label-column class --out "$work/csv.safetensors" > "$work/csv.log" \
    || { cat "$work/csv.log"; fail "tokenize CSV"; }
grep -q "0=animal (2) 1=greeting (1)" "$work/csv.log" || { cat "$work/csv.log"; fail "CSV labels"; }
want=$("$clora" encode --model "$work/bert" --add-special --text 'The fox, the "lazy" dog'),$(
    "$clora" encode --model "$work/bert" --add-special --text "$(printf 'Hello\r\nworld')"),$(
    "$clora" encode --model "$work/bert" --add-special --text 'the dog')
got=$(tensor_ints "$work/csv.safetensors" inputs | tr , '\n' | grep -v '^0$' | paste -sd, -)
[ "$got" = "$want" ] || fail "CSV: the quoted texts' ids are $got, not $want"
printf 'label\ttext\nanimal\t"the\tfox"\ngreeting\thello\n' > "$work/header.tsv"
"$clora" tokenize --model "$work/bert" --input "$work/header.tsv" --out "$work/tsv.safetensors" \
    > "$work/tsv.log" || { cat "$work/tsv.log"; fail "tokenize TSV"; }
grep -q "^2 examples from" "$work/tsv.log" || { cat "$work/tsv.log"; fail "TSV examples"; }
grep -q "task classify, tokenizer [0-9a-f]\{16\}$" "$work/tsv.log" || fail "TSV: no task line"
# lm_tokenize NAME OUT [OPTION...]: $work/NAME.jsonl through SmolLM2's tokenizer into
# $work/OUT.safetensors, the report in $work/OUT.log
lm_tokenize() {
    lm_name=$1 lm_out=$2
    shift 2
    "$clora" tokenize --model "$smollm" --input "$work/$lm_name.jsonl" \
        --out "$work/$lm_out.safetensors" "$@" > "$work/$lm_out.log" \
        || { cat "$work/$lm_out.log"; fail "tokenize $lm_name.jsonl $*"; }
}
# ids TEXT...: SmolLM2's ids of the texts, all comma-separated
ids() { for t in "$@"; do "$clora" encode --model "$smollm" --text "$t"; done | paste -sd, -; }
printf '{"text": "Hello world"}\n{"text": "The quick brown fox"}\n' > "$work/text.jsonl"
lm_tokenize text text_lm
want=$("$clora" encode --model "$smollm" --add-special --text "Hello world" | cut -d, -f2-),$(
    "$clora" encode --model "$smollm" --add-special --text "The quick brown fox" | cut -d, -f2-)
[ "$(scored "$work/text_lm.safetensors")" = "$want" ] \
    || fail "text JSONL: not every next token scored"
"$clora" info "$work/text_lm.safetensors" > "$work/lm_info" || fail "info on a causal-LM dataset"
grep -q "labels .*I32 *(2, 4)" "$work/lm_info" \
    || { cat "$work/lm_info"; fail "text JSONL: labels (N, T)"; }
grep -q "metadata task = causal_lm" "$work/lm_info" || fail "text JSONL: no task"
fingerprint=$(sed -n 's/.*tokenizer \([0-9a-f]*\)$/\1/p' "$work/text_lm.log")
grep -q "metadata tokenizer = $fingerprint" "$work/lm_info" || fail "text JSONL: no fingerprint"
printf '{"prompt": "Q: 2+2?", "completion": " A: 4"}\n{"prompt": "Hi", "response": " there"}\n' \
    > "$work/prompt.jsonl"
lm_tokenize prompt prompt
# the completion and EOS scored (SmolLM2's EOS is <|im_end|>)
want=$(ids " A: 4<|im_end|>" " there<|im_end|>")
[ "$(scored "$work/prompt.safetensors")" = "$want" ] || fail "prompt JSONL: scored tokens"
lm_tokenize prompt all --train-on-prompt
[ "$(scored "$work/all.safetensors")" = "$(ids "Q: 2+2?" | cut -d, -f2-),$want" ] \
    || fail "--train-on-prompt: the prompt not scored"
lm_tokenize prompt cut --max-length 6
grep -q "1 cut to --max-length 6" "$work/cut.log" || { cat "$work/cut.log"; fail "cut count"; }
grep -q "dropped 1 of 2 examples: no scored token left" "$work/cut.log" || fail "dropped count"
{
    printf '{"messages": [{"role": "user", "content": "Hi"}, '
    printf '{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}, '
    printf '{"role": "assistant", "content": "Ciao"}]}\n'
} > "$work/chat.jsonl"
lm_tokenize chat chat
[ "$(scored "$work/chat.safetensors")" = "$(ids "Hello!<|im_end|>" "Ciao<|im_end|>")" ] \
    || fail "messages: the assistant's tokens"
want=$("$clora" encode --model "$smollm" --chat --text Hi)
tensor_ints "$work/chat.safetensors" inputs | grep -q "^$want" || fail "messages: not the template"
# a causal LM trains on what tokenize wrote: tiny GPT-2 with a 32-token BPE
tiny_lm "$work/tiny_lm" "$golden/tiny_gpt2" || fail "the tiny GPT-2 with its own tokenizer"
for i in 1 2 3 4; do
    printf '{"prompt": "the cat", "completion": " sat"}\n'
    printf '{"prompt": "a dog", "completion": " ran"}\n'
done > "$work/tiny.jsonl"
"$clora" tokenize --model "$work/tiny_lm" --input "$work/tiny.jsonl" \
    --out "$work/tiny.safetensors" > "$work/tiny.log" \
    || { cat "$work/tiny.log"; fail "tokenize for tiny GPT-2"; }
"$clora" train --model "$work/tiny_lm" --data "$work/tiny.safetensors" --out "$work/tiny_lora" \
    --steps 8 --batch-size 4 --lr 0.01 > "$work/tiny_train.log" 2>&1 \
    || { cat "$work/tiny_train.log"; fail "train on a tokenized causal-LM dataset"; }
grep -q "adapter saved" "$work/tiny_train.log" || fail "train on tokenized LM data: no adapter"
echo "ok: tokenize CSV, TSV and JSON Lines"

# Decoders classify: tiny GPT-2 gets "score" on its last real token, trained
# in full or with LoRA on it; the adapter brings the head to clora logits
{
    printf 'text,label\n'
    for i in 1 2 3 4 5 6; do printf 'the cat,cat\nhe ll,other\n'; done
} > "$work/cls.csv"
"$clora" tokenize --model "$work/tiny_lm" --input "$work/cls.csv" --out "$work/cls.safetensors" \
    > "$work/cls.log" || { cat "$work/cls.log"; fail "tokenize classification for GPT-2"; }
"$clora" train --model "$work/tiny_lm" --data "$work/cls.safetensors" --val "$work/cls.safetensors" \
    --test "$work/cls.safetensors" --out "$work/cls_full" --epochs 6 --batch-size 4 --lr 0.05 \
    --eval-every 6 --json "$work/cls.json" --log "$work/cls_loss.csv" > "$work/cls_train.log" 2>&1 \
    || { cat "$work/cls_train.log"; fail "train a GPT-2 classifier"; }
grep -q 'classification head "score": 2 classes' "$work/cls_train.log" || fail "no score head"
grep -q "trained in full and saved with the adapter: score" "$work/cls_train.log" \
    || fail "score not in modules_to_save"
grep -q "accuracy: .* -> 100.00%" "$work/cls_train.log" || { cat "$work/cls_train.log"; fail "GPT-2 classifier did not learn"; }
grep -q "best so far: saved to" "$work/cls_train.log" || fail "no best adapter"
[ -f "$work/cls_full/best/adapter_model.safetensors" ] || fail "best adapter not written"
grep -q '"trainable_params"' "$work/cls.json" || fail "--json: no parameter count"
grep -q '^val,6,' "$work/cls_loss.csv" || fail "loss CSV: no validation row"
"$clora" info "$work/cls_full" | grep -q "base_model.model.score.weight" || fail "score not saved"
"$clora" logits --model "$work/tiny_lm" --adapter "$work/cls_full" --prompt "the cat" \
    --out "$work/cls_logits.safetensors" > "$work/cls_logits.log" || fail "logits of a classifier"
grep -q "logits (1, 2)" "$work/cls_logits.log" || { cat "$work/cls_logits.log"; fail "classifier logits shape"; }
grep -q "classes, top 5" "$work/cls_logits.log" || fail "classifier logits: not classes"
expect_error "it does not generate" "$clora" generate --model "$work/tiny_lm" \
    --adapter "$work/cls_full" --prompt "the cat"
"$clora" train --model "$work/tiny_lm" --data "$work/cls.safetensors" --out "$work/cls_lora" \
    --steps 3 --batch-size 4 --targets all-linear --lora-on-head > "$work/cls_lora.log" 2>&1 \
    || { cat "$work/cls_lora.log"; fail "train with LoRA on the head"; }
"$clora" info "$work/cls_lora" | grep -q "score.base_layer.weight" || fail "frozen head not saved"
"$clora" info "$work/cls_lora" | grep -q "score.lora_A.weight" || fail "no LoRA on the head"
"$clora" info "$work/cls_lora" | grep -q "c_fc.lora_A.weight" || fail "all-linear: no c_fc"
echo "ok: decoder classification"

# A run stopped and resumed writes the bytes of an uninterrupted one (dropout on,
# a linear schedule); micro-batches run
run_lm() {
    "$clora" train --model "$golden/tiny_llama" --data "$golden/next_token_24x10.safetensors" \
        --steps 6 --batch-size 8 --lr 0.01 --dropout 0.2 --schedule linear --seed 4 "$@" \
        > "$work/resume.log" 2>&1 || { cat "$work/resume.log"; fail "train $*"; }
}
run_lm --out "$work/straight"
run_lm --out "$work/halves" --stop-at 3
[ -f "$work/halves/training_state.safetensors" ] || fail "no training state saved"
run_lm --out "$work/halves" --resume "$work/halves"
grep -q "continued .* from step 3" "$work/resume.log" || fail "resume: not from step 3"
cmp -s "$work/straight/adapter_model.safetensors" "$work/halves/adapter_model.safetensors" \
    || fail "resumed run differs from the uninterrupted one"
run_lm --out "$work/accum" --grad-accum 4
grep -q "in 4 micro-batches" "$work/resume.log" || fail "--grad-accum not used"
# the adapter as drawn, before the first step: valid, the same in every run, not the trained one
run_lm --out "$work/drawn" --save-initial "$work/initial"
run_lm --out "$work/drawn2" --save-initial "$work/initial2"
"$clora" info "$work/initial" > /dev/null || fail "--save-initial wrote an invalid adapter"
cmp -s "$work/initial/adapter_model.safetensors" "$work/initial2/adapter_model.safetensors" \
    || fail "--save-initial: two runs with one seed drew different adapters"
cmp -s "$work/initial/adapter_model.safetensors" "$work/drawn/adapter_model.safetensors" \
    && fail "--save-initial wrote the trained adapter"
expect_error "exclude each other" "$clora" train --model "$golden/tiny_llama" \
    --data "$golden/next_token_24x10.safetensors" --out "$work/halves" --resume "$work/halves" \
    --save-initial "$work/never_si"
expect_error "does not divide" "$clora" train --model "$golden/tiny_llama" \
    --data "$golden/next_token_24x10.safetensors" --out "$work/never_ga" --grad-accum 3 \
    --batch-size 8
expect_error "other trainable parameters" "$clora" train --model "$golden/tiny_llama" \
    --data "$golden/next_token_24x10.safetensors" --out "$work/never_rs" --steps 6 \
    --batch-size 8 --rank 4 --resume "$work/halves"
expect_error "--task classify needs" "$clora" train --model "$golden/tiny_llama" \
    --data "$golden/next_token_24x10.safetensors" --out "$work/never_tc" --task classify
expect_error "--lora-on-head is for" "$clora" train --model "$work/bert" \
    --data "$work/text.safetensors" --out "$work/never_lh" --lora-on-head
expect_error "training_state.safetensors" "$clora" train --model "$golden/tiny_llama" \
    --data "$golden/next_token_24x10.safetensors" --out "$work/never_rn" --steps 6 \
    --batch-size 8 --resume "$work/cls_full/best"
expect_error "holds other data than the training file" "$clora" train --model "$work/tiny_lm" \
    --data "$work/cls.safetensors" --val "$work/tiny.safetensors" --out "$work/never_ov"
echo "ok: resume, micro-batches"

# bad paths and files
head -c 100 "$work/demo/adapter/adapter_model.safetensors" > "$work/truncated.safetensors"
mkdir "$work/bad_adapter"
cp "$work/demo/adapter/adapter_config.json" "$work/bad_adapter/"
cp "$work/truncated.safetensors" "$work/bad_adapter/adapter_model.safetensors"
expect_error "no such file" "$clora" info "$work/nothing"
expect_error "passes the end" "$clora" info "$work/truncated.safetensors"
head -c 2000 "$golden/gguf/tensors.gguf" > "$work/truncated.gguf"
expect_error 'tensor "q8_0": its 408 bytes' "$clora" info "$work/truncated.gguf"
expect_error "passes the end" "$clora" merge --model "$work/demo/base" \
    --adapter "$work/bad_adapter" --out "$work/never1"
expect_error "config.json" "$clora" merge --model "$work/nothing" \
    --adapter "$work/demo/adapter" --out "$work/never2"
expect_error "passes the end" "$clora" train --model "$work/demo/base" \
    --data "$work/truncated.safetensors" --out "$work/never3"
expect_error "not found in the model: nope" "$clora" train --model "$work/demo/base" \
    --data "$work/demo/task_b_train.safetensors" --out "$work/never4" --targets nope
expect_error "inputs" "$clora" train --model "$work/demo/base" \
    --data "$work/demo/adapter/adapter_model.safetensors" --out "$work/never5"
expect_error "required" "$clora" merge --model "$work/demo/base"
expect_error "unknown option" "$clora" train --bogus
expect_error "unknown command" "$clora" frobnicate
expect_error "not LABEL<TAB>TEXT" "$clora" tokenize --model "$work/bert" --input "$work/bert/vocab.txt" \
    --out "$work/never6"
printf 'bad\377label\tthe dog\n' > "$work/badlabel.txt"
expect_error "not valid UTF-8" "$clora" tokenize --model "$work/bert" --input "$work/badlabel.txt" \
    --out "$work/never10"
expect_error "vocab.txt" "$clora" tokenize --model "$work/nothing" --input "$work/text.txt" \
    --out "$work/never7"
expect_error "made with another tokenizer (fingerprint $fingerprint) than model $work/tiny_lm's" \
    "$clora" train --model "$work/tiny_lm" --data "$work/text_lm.safetensors" --out "$work/never13"
cp "$work/text.txt" "$work/old.tsv"
expect_error "no column \"text\" (--text-column) in the header.*are --format lines" \
    "$clora" tokenize --model "$work/bert" --input "$work/old.tsv" --out "$work/never14"
expect_error "quoted.csv line 1: no column \"text\" (--text-column)" "$clora" tokenize \
    --model "$work/bert" --input "$work/quoted.csv" --out "$work/never14"
printf 'text,label\n"fine",a\n"never closed,b\n' > "$work/open.csv"
expect_error "open.csv line 3, column 1 (\"text\"): the quote that opens this field is never" \
    "$clora" tokenize --model "$work/bert" --input "$work/open.csv" --out "$work/never14"
printf 'text,label\nfine,a,b\n' > "$work/wide.csv"
expect_error "wide.csv line 2: 3 fields where the header has 2" \
    "$clora" tokenize --model "$work/bert" --input "$work/wide.csv" --out "$work/never14"
: > "$work/empty.csv"
expect_error "empty.csv is empty" "$clora" tokenize --model "$work/bert" --input "$work/empty.csv" \
    --out "$work/never14"
printf '{"text": "fine"}\n{"text": "bad",}\n' > "$work/bad.jsonl"
expect_error "bad.jsonl line 2, column 16: not JSON" "$clora" tokenize --model "$smollm" \
    --input "$work/bad.jsonl" --out "$work/never14"
printf '{"text": "fine", "id": 1}\n' > "$work/keys.jsonl"
expect_error "keys.jsonl line 1: unknown key \"id\" in a text example" "$clora" tokenize \
    --model "$smollm" --input "$work/keys.jsonl" --out "$work/never14"
cat "$work/text.jsonl" "$work/prompt.jsonl" > "$work/mixed.jsonl"
expect_error "mixed.jsonl line 3: a prompt/completion example in a file of text examples (line 1)" \
    "$clora" tokenize --model "$smollm" --input "$work/mixed.jsonl" --out "$work/never14"
expect_error "chat.jsonl holds \"messages\", and the tokenizer ships no chat template" \
    "$clora" tokenize --model "$golden/gpt2_tokenizer" --input "$work/chat.jsonl" \
    --out "$work/never14"
expect_error "--text-column goes with --format csv or tsv; .*text.jsonl holds text (--format" \
    "$clora" tokenize --model "$smollm" --input "$work/text.jsonl" --text-column body \
    --out "$work/never14"
expect_error "--labels goes with labelled text" "$clora" tokenize --model "$smollm" \
    --input "$work/text.jsonl" --labels a,b --out "$work/never14"
expect_error "--train-on-prompt goes with JSON Lines" "$clora" tokenize --model "$work/bert" \
    --input "$work/text.txt" --train-on-prompt --out "$work/never14"
expect_error "--format \"xml\" is not one of" "$clora" tokenize --model "$work/bert" \
    --input "$work/text.txt" --format xml --out "$work/never14"
expect_error "--tokens expects" "$clora" logits --model "$golden/tiny_gpt2" --tokens 1,x --out "$work/never8"
expect_error "is outside" "$clora" logits --model "$golden/tiny_gpt2" --tokens 1,99 --out "$work/never9"
# clora info refuses an adapter a loader would refuse, after showing it
mkdir -p "$work/bad_adapter"
cp "$golden/tiny_gpt2_lora/adapter_model.safetensors" "$work/bad_adapter/"
sed 's/"r": [0-9]*/"r": 0/' "$golden/tiny_gpt2_lora/adapter_config.json" \
    > "$work/bad_adapter/adapter_config.json"
expect_error "invalid adapter: .*\"r\" must be an integer from 1" "$clora" info "$work/bad_adapter"
"$clora" info "$golden/tiny_gpt2_lora" > /dev/null || fail "info on a good adapter"
expect_error "is not a GPT-2 or Llama-family" "$clora" generate --model "$work/bert" --tokens 1,2
expect_error "outside the vocabulary" "$clora" generate --model "$golden/gguf_llama/llama-Q8_0.gguf" \
    --tokens 1,50
expect_error "exclude each other" "$clora" generate --model "$golden/tiny_gpt2" --tokens 1 \
    --prompt hi
expect_error "--chat and --system go with --prompt" "$clora" generate \
    --model "$golden/tiny_gpt2" --tokens 1 --chat
expect_error "--model is required" "$clora" encode --text hi
expect_error "no such folder" "$clora" encode --model "$work/nothing" --text hi
expect_error "token id 49152 (at 1) is outside the vocabulary" "$clora" decode \
    --model "$golden/smollm2_tokenizer.gguf" --tokens 1,49152
expect_error "--tokens expects" "$clora" decode --model "$golden/gpt2_tokenizer" --tokens 1,-2
printf 'fine\nnot \377 fine\n' > "$work/bad_utf8.txt"
expect_error "line 2: the text is not valid UTF-8 at byte 4" sh -c \
    "\"\$0\" encode --model \"\$1\" < \"\$2\"" "$clora" "$golden/gpt2_tokenizer" "$work/bad_utf8.txt"
expect_error "ships no chat template" "$clora" encode --model "$golden/gpt2_tokenizer" --chat \
    --text hi
expect_error "exclude each other" "$clora" encode --model "$golden/gpt2_tokenizer" --chat \
    --add-special --text hi
# CLBlast tuning: CLBlast's own parameters on request, bad tuning files, tune's errors
CLORA_TUNING=off "$clora" selfcheck --rows 9 --in 10 --out 11 --rank 2 --reps 0 > "$work/off.log" \
    || { cat "$work/off.log"; fail "selfcheck under CLORA_TUNING=off"; }
grep -q "CLBlast parameters: CLBlast's own parameters (CLORA_TUNING=off)" "$work/off.log" \
    || fail "selfcheck does not say CLORA_TUNING=off"
expect_error "cannot open $work/nothing.json" env CLORA_TUNING="$work/nothing.json" \
    "$clora" selfcheck --reps 0
mkdir "$work/empty"
expect_error "no clblast_tuner_xgemm results" "$clora" tune --from "$work/empty" \
    --output "$work/never11"
expect_error "multiples of 128" "$clora" tune --m 100
expect_error "exclude each other" "$clora" tune --from "$work/empty" --keep "$work/never12"
expect_error "unknown option" "$clora" tune --fraction 0.1
expect_error "unknown option" "$clora" bench --bogus
"$clora" bench --quick --only lora_forward --reps 1 --json > "$work/bench.jsonl" \
    || fail "bench --quick --only lora_forward"
grep -q '^{"name":"lora_forward_vs_gemm","shape":"N=512 in=768 out=768 r=8","median_ms":' \
    "$work/bench.jsonl" || { cat "$work/bench.jsonl"; fail "bench JSON line"; }
grep -q '"baseline":"gemm","baseline_ms":.*"ratio":.*"ratio_of":"time"' "$work/bench.jsonl" \
    || { cat "$work/bench.jsonl"; fail "bench JSON ratio"; }
[ "$(wc -l < "$work/bench.jsonl")" -eq 1 ] || fail "bench --only printed other measurements"
"$clora" bench --quick --only lora_step --reps 1 --json > "$work/step.jsonl" \
    || fail "bench --quick --only lora_step"
grep -q '"name":"lora_step_vs_full_step".*"baseline":"full_step".*"gemm_floor":[0-9]' \
    "$work/step.jsonl" || { cat "$work/step.jsonl"; fail "bench step JSON gemm_floor"; }
"$clora" bench --quick --only dora_layer --reps 1 --json > "$work/dora.jsonl" \
    || fail "bench --quick --only dora_layer"
grep -q '"name":"dora_layer_step".*"baseline":"lora_layer_step".*"ratio":' "$work/dora.jsonl" \
    || { cat "$work/dora.jsonl"; fail "bench dora_layer_step JSON ratio"; }
echo "ok: tuning and bench"

# NaN and infinities in weights, adapters and data; labels out of range; outputs that
# cannot be written
nan_at_start() { # the first 4 bytes of a safetensors file's data become a float NaN
    hlen=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
    printf '\000\000\300\177' | dd of="$1" bs=1 seek=$((8 + hlen)) conv=notrunc 2> /dev/null
}
cp -r "$work/demo/base" "$work/nan_base"
nan_at_start "$work/nan_base/model.safetensors"
expect_error "model.safetensors: tensor \".*\" holds NaN at element 0" "$clora" train \
    --model "$work/nan_base" --data "$work/demo/task_b_train.safetensors" --out "$work/never15"
cp -r "$work/demo/adapter" "$work/nan_adapter"
nan_at_start "$work/nan_adapter/adapter_model.safetensors"
expect_error "adapter_model.safetensors: tensor \".*\" holds NaN at element 0" "$clora" merge \
    --model "$work/demo/base" --adapter "$work/nan_adapter" --out "$work/never15"
# dataset_file OUT LABEL1 FLOAT3: inputs (2, 2) F32 [1, 1, FLOAT3, 1], labels I32 [0, LABEL1]
dataset_file() {
    h='{"inputs":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'
    h=$h'"labels":{"dtype":"I32","shape":[2],"data_offsets":[16,24]}}'
    while [ $((${#h} % 8)) -ne 0 ]; do h="$h "; done
    one='\000\000\200\077'
    {
        printf "\\$(printf %03o ${#h})\000\000\000\000\000\000\000"
        printf '%s' "$h"
        printf "$one$one$3$one"
        printf '\000\000\000\000'
        printf "$2"
    } > "$1"
}
dataset_file "$work/good_data.safetensors" '\001\000\000\000' '\000\000\200\077'
"$clora" info "$work/good_data.safetensors" > /dev/null || fail "the hand-made dataset file"
dataset_file "$work/nan_data.safetensors" '\001\000\000\000' '\000\000\300\177'
expect_error "nan_data.safetensors: \"inputs\" holds NaN in example 1 (element 0)" "$clora" train \
    --model "$work/demo/base" --data "$work/nan_data.safetensors" --out "$work/never15"
dataset_file "$work/inf_data.safetensors" '\001\000\000\000' '\000\000\200\377'
expect_error "\"inputs\" holds an infinity in example 1" "$clora" train \
    --model "$work/demo/base" --data "$work/inf_data.safetensors" --out "$work/never15"
dataset_file "$work/neg_data.safetensors" '\375\377\377\377' '\000\000\200\077'
expect_error "\"labels\" holds -3 in example 1; labels are class indices from 0" "$clora" train \
    --model "$work/demo/base" --data "$work/neg_data.safetensors" --out "$work/never15"
expect_error "cannot" "$clora" train --model "$work/demo/base" \
    --data "$work/demo/task_b_train.safetensors" --steps 1 --out "$work/truncated.gguf/never"
expect_error "cannot" "$clora" merge --model "$work/demo/base" --adapter "$work/demo/adapter" \
    --out "$work/truncated.gguf/never"
expect_error "tensor \"x\": shape overflows" sh -c '
    h="{\"x\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,16]}}"
    printf "\\$(printf %03o ${#h})\000\000\000\000\000\000\000%s" "$h" > "$1/huge.safetensors"
    head -c 16 /dev/zero >> "$1/huge.safetensors"
    exec "$0" info "$1/huge.safetensors"' "$clora" "$work"
# an adapter made for another model, in every command that takes one
expect_error "is for module \"transformer.h.0.attn.c_attn\", which the model lacks" "$clora" merge \
    --model "$golden/tiny_llama" --adapter "$golden/tiny_gpt2_lora" --out "$work/never15"
expect_error "names module \"classifier\", which the model lacks" "$clora" generate \
    --model "$golden/tiny_llama" --adapter "$golden/tiny_bert_lora" --tokens 1,2
expect_error "is for module \"model.layers.0.mlp.down_proj\", which the model lacks" "$clora" \
    logits --model "$golden/tiny_gpt2" --adapter "$golden/tiny_llama_lora" --tokens 1,2 \
    --out "$work/never15"
echo "ok: non-finite values, labels, unwritable outputs, overflowing shapes, foreign adapters"

for d in never1 never2 never3 never4 never5 never6 never7 never8 never9 never10 never11 never12 \
         never13 never14 never15 never16; do
    [ -e "$work/$d" ] && fail "a failed command left $d behind"
done
echo "ok: bad inputs"
