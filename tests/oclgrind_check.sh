#!/bin/sh
# Runs `clora selfcheck` on small LoRA layers under oclgrind and fails on any
# report: out-of-bounds access, data race, uninitialised value, API misuse.
# The shapes cover ragged tiles, r = 1, a reduction split into chunks
# (N >= 128), dropout, both kernel families and the smaller tiles of
# CLORA_RANK_TILE. Then a few training steps of small GPT-2 and BERT models
# (test_transformer's one_training_step) and the Llama kernels and a small
# Qwen2 model (test_llama) and the last-token pooling (test_classifier),
# without the uninitialised-value
# check: oclgrind does not count clEnqueueFillBuffer as writing, and models
# start their zero parameters and gradients that way.
# Last, the packed weights' kernels (test_packed): dequantizing every type,
# packed embedding rows, and the fused few-row product.
# Then DoRA's kernels (test_dora): the op on ragged shapes with and
# without dropout, its finite-difference check, F16 and BF16 bases, and a
# GPT-2 with PEFT's DoRA adapter, forward and backward; and LoRA on an
# embedding table (test_embedding_lora): repeated ids, a padding row.
#   oclgrind_check.sh OCLGRIND CLORA TEST_TRANSFORMER TEST_LLAMA TEST_GENERATE TEST_CLASSIFIER
#                     TEST_PACKED TEST_DORA TEST_EMBEDDING_LORA
set -u
oclgrind=$1
clora=$2
transformer=$3
llama=$4
generate=$5
classifier=$6
packed=$7
dora=$8
embedding_lora=$9
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
# Ranks past one block of 8, rows of X not a multiple of 4 (streaming family).
run streaming 16 --rows 6 --in 9 --out 13 --rank 11 --dropout 0.1
run streaming 16 --rows 5 --in 17 --out 19 --rank 16 --dropout 0.3
# Widths that reach every step of the row kernels' loops (32, 8, 4 and 1 wide).
run streaming 16 --rows 5 --in 45 --out 77 --rank 9 --dropout 0.2
run tiled 4 --rows 9 --in 13 --out 11 --rank 1 --dropout 0.5
run tiled 1 --rows 5 --in 6 --out 7 --rank 3
run streaming 16 --rows 9 --in 13 --out 11 --rank 6 --dropout 0.5
# oclgrind 21.10 aborts in glibc's heap checks while a cmocka test binary
# exits, after the tests have run (the same binary is clean under ASan), so
# the verdict is cmocka's line and oclgrind's log, not the exit status.
# Its uninitialised-value plugin stops at LLVM's freeze instruction, which
# PoCL's compiler emits for the grouped heads' division, so the Llama runs
# go without that check as well.
#   run_test BINARY FILTER TESTS
run_test() {
    : > "$log"
    "$oclgrind" --check-api --data-races --log "$log" "$1" "$2" > "$log.out" 2>&1
    if ! grep -q "PASSED  \] $3 test" "$log.out"; then
        echo "FAILED: $(basename "$1") $2"
        cat "$log.out"
        status=1
    fi
    rm -f "$log.out"
    if [ -s "$log" ]; then
        echo "oclgrind reports for $(basename "$1") $2:"
        head -40 "$log"
        status=1
    else
        echo "clean: $(basename "$1") $2"
    fi
}
run_test "$transformer" one_training_step 1
# RMSNorm, rotary embeddings, SwiGLU, the grouped heads and the few-rows
# product at odd sizes, then
# a Qwen2 forward and backward with LoRA on every projection.
run_test "$llama" "*_reference" 5
run_test "$llama" qwen2_against_pytorch 1
# The key/value cache: prefill, then one token per step, rows of different
# lengths fed in pieces.
run_test "$generate" rows_of_different_lengths 1
run_test "$generate" with_an_adapter 1
# Pooling at each row's last kept token.
run_test "$classifier" last_token_pool_matches_reference 1
# Dequantizing every packed type, packed embedding rows, the fused product
# (the simulator is no CPU device: work-groups of 32 that reduce in local
# memory, as GPUs run it).
run_test "$packed" "*_bit" 1
run_test "$packed" "packed_embedding*" 1
run_test "$packed" "the_fused*" 1
run_test "$dora" op_matches_reference 1
run_test "$dora" gradients_match_finite_differences 1
run_test "$dora" f16_and_bf16_bases 1
run_test "$dora" peft_gpt2_outputs_gradients 1
run_test "$embedding_lora" kernels_match_reference_and_repeat_bit_for_bit 1
run_test "$embedding_lora" llama_embed_tokens_against_peft 1
rm -f "$log"
exit $status
