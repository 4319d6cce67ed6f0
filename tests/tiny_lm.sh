# tiny_lm.sh — sourced by the command-line checks: tiny_lm DIR GPT2 makes
# DIR a GPT-2 folder (GPT2's config and weights) with a 32-token byte-level
# BPE tokenizer of its own (a-z, the space, and merges to "the" and "hell").
tiny_lm() {
    mkdir "$1" || return 1
    cp "$2/config.json" "$2/model.safetensors" "$1/" || return 1
    {
        printf '{"<|endoftext|>": 0'
        i=1
        for c in a b c d e f g h i j k l m n o p q r s t u v w x y z; do
            printf ', "%s": %d' $c $i
            i=$((i + 1))
        done
        printf ', "\\u0120": 27, "he": 28, "ll": 29, "\\u0120t": 30, "\\u0120the": 31}\n'
    } > "$1/vocab.json"
    printf '#version: 0.2\nh e\nl l\n\304\240 t\n\304\240t he\n' > "$1/merges.txt"
    printf '{"model_max_length": 16}\n' > "$1/tokenizer_config.json"
}
