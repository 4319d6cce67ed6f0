#!/bin/sh
# The library's layers stay one-way. Layers, lowest first:
#   core (0)   ops (1)   io (1)   nn (2)   train (3)   tools (4)
# ops and io stand side by side: neither may use the other. Three checks:
#   1. includes: a source or header of src/<layer>/ includes only headers of
#      its own layer or lower ones, written "<layer>/<name>.h" or
#      "clora/<name>.h" (each public header belongs to a layer, below);
#      public headers follow the same rule; tools/ includes public headers
#      and its own; nothing includes a header of a higher layer;
#   2. no headers include each other in a circle;
#   3. calls: in the compiled objects, no file refers to a symbol of a
#      higher or sibling layer, and no files refer to each other in a
#      circle (with one file per circle's member named).
#   layering_check.sh SOURCE_DIR "OBJECT;OBJECT;..."
set -u
root=$1
objects=$2
status=0
fail() {
    echo "FAILED: $*"
    status=1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rank() {
    case $1 in
    core) echo 0 ;;
    ops | io) echo 1 ;;
    nn) echo 2 ;;
    train) echo 3 ;;
    tools) echo 4 ;;
    *) echo 99 ;;
    esac
}

# The layer each public header belongs to.
public_layer() {
    case $1 in
    status.h | version.h | version.h.in | dtype.h | device.h | buffer.h | file.h) echo core ;;
    linear.h | lora.h | dora.h | reference.h | loss.h) echo ops ;;
    safetensors.h | tokenizer.h | gguf.h) echo io ;;
    model.h | adapter.h | hf_save.h | transformer.h | llama.h | generate.h) echo nn ;;
    train.h) echo train ;;
    clora.h) echo tools ;; # the umbrella: for applications and the command
    *) echo unknown ;;
    esac
}

# may_use FROM TO: 0 when layer FROM may use layer TO.
may_use() {
    [ "$1" = "$2" ] || [ "$(rank "$2")" -lt "$(rank "$1")" ]
}

# ---- 1. includes ------------------------------------------------------------
: > "$work/header_edges"
check_includes() { # FILE LAYER NAME-FOR-THE-GRAPH
    file=$1
    layer=$2
    node=$3
    grep -o '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*"' "$file" | sed 's/.*"\(.*\)"/\1/' |
        while read -r inc; do
            case $inc in
            clora/*) target=$(public_layer "${inc#clora/}") ;;
            core/* | ops/* | io/* | nn/* | train/*) target=${inc%%/*} ;;
            *)
                if [ "$layer" = tools ] && [ -f "$(dirname "$file")/$inc" ]; then
                    target=tools
                else
                    echo "FAILED: $node includes \"$inc\": name a header as \"<layer>/<name>.h\" or \"clora/<name>.h\""
                    continue
                fi
                ;;
            esac
            if [ "$target" = unknown ]; then
                echo "FAILED: $node includes \"$inc\", a public header this check puts in no layer"
            elif ! may_use "$layer" "$target"; then
                echo "FAILED: $node ($layer) includes \"$inc\" of layer $target"
            fi
            case $inc in
            clora/*) echo "$node include/$inc" >> "$work/header_edges" ;;
            */*) echo "$node src/$inc" >> "$work/header_edges" ;;
            *) echo "$node $(dirname "$node")/$inc" >> "$work/header_edges" ;;
            esac
        done
}

# check_includes runs in pipelines: it prints its failures, collected here
{
    for dir in "$root"/src/*/; do
        layer=$(basename "$dir")
        [ "$(rank "$layer")" -eq 99 ] && echo "FAILED: src/$layer is no layer this check knows"
        for file in "$dir"*.c "$dir"*.h; do
            [ -f "$file" ] || continue
            check_includes "$file" "$layer" "src/$layer/$(basename "$file")"
        done
    done
    for file in "$root"/include/clora/*.h "$root"/include/clora/*.h.in; do
        [ -f "$file" ] || continue
        check_includes "$file" "$(public_layer "$(basename "$file")")" \
            "include/clora/$(basename "$file")"
    done
    for file in "$root"/tools/*.c "$root"/tools/*.h; do
        [ -f "$file" ] || continue
        check_includes "$file" tools "tools/$(basename "$file")"
    done
} > "$work/include_failures"
if [ -s "$work/include_failures" ]; then
    sort -u "$work/include_failures"
    status=1
else
    echo "ok: every include goes to the same layer or a lower one"
fi

# ---- 2. circles of headers --------------------------------------------------
sort -u "$work/header_edges" | grep '\.h .*\.h$' > "$work/header_graph"
if ! tsort "$work/header_graph" > /dev/null 2> "$work/tsort"; then
    fail "headers include each other in a circle:"
    grep -v 'input contains a loop' "$work/tsort" | sed 's/^tsort: /  /'
else
    echo "ok: no headers include each other in a circle"
fi

# ---- 3. calls between the compiled files ------------------------------------
# Each object as "layer/file.c": .../src/<layer>/<file>.c.o; the generated
# kernel and tuning tables count as core.
object_name() {
    case $1 in
    */src/core/* | */src/ops/* | */src/io/* | */src/nn/* | */src/train/*)
        echo "$1" | sed 's|.*/src/\([a-z]*\)/\([^/]*\)\.o$|\1/\2|'
        ;;
    *) echo "core/$(basename "$1" .o)" ;;
    esac
}
: > "$work/defined"
: > "$work/undefined"
count=0
old_ifs=$IFS
IFS=';'
for object in $objects; do
    IFS=$old_ifs
    [ -f "$object" ] || { fail "no object file $object (build the library first)"; continue; }
    name=$(object_name "$object")
    nm -P "$object" | awk -v name="$name" '$2 ~ /^[TDBRCGSV]$/ { print $1, name }' >> "$work/defined"
    nm -P "$object" | awk -v name="$name" '$2 == "U" { print name, $1 }' >> "$work/undefined"
    count=$((count + 1))
done
IFS=$old_ifs
[ "$count" -gt 0 ] || fail "no object files given"
# edges "from to" between files, for every symbol one uses and another defines
awk 'NR == FNR { owner[$1] = $2; next } ($2 in owner) && owner[$2] != $1 { print $1, owner[$2], $2 }' \
    "$work/defined" "$work/undefined" | sort -u > "$work/calls"
awk '{ print $1, $2 }' "$work/calls" | sort -u > "$work/file_graph"
upward=0
while read -r from to symbol; do
    if ! may_use "${from%%/*}" "${to%%/*}"; then
        echo "FAILED: $from (${from%%/*}) uses $symbol of $to (${to%%/*})"
        upward=1
    fi
done < "$work/calls"
[ "$upward" -eq 0 ] && echo "ok: no file uses a symbol of a higher or sibling layer ($count objects)"
[ "$upward" -eq 0 ] || status=1
if ! tsort "$work/file_graph" > /dev/null 2> "$work/tsort"; then
    fail "files use each other in a circle:"
    grep -v 'input contains a loop' "$work/tsort" | sed 's/^tsort: /  /'
else
    echo "ok: no files use each other in a circle"
fi
exit $status
