/* pretokenize.c — the pre-tokenizer patterns of byte-level BPE models,
 * matched by hand on utf8proc's general categories (no regex engine).
 *
 * Each pattern is an alternation that a regex engine tries in order at
 * the current position; the first alternative that matches gives the
 * piece, and the next piece starts where it ends. Every character is
 * matched by some alternative, so the pieces cover the text. Classes:
 * \p{L} letters (Lu Ll Lt Lm Lo), \p{N} numbers (Nd Nl No), \s Unicode's
 * White_Space property, which is what both Hugging Face's (Oniguruma) and
 * llama.cpp's \s mean. Matching stays inside [start, end): a lookahead at
 * `end` sees the end of the text, as it does where a pattern runs on a
 * piece of a longer text (after SmolLM's digit split, or between special
 * tokens). */
#include <string.h>
#include <utf8proc.h>

#include "io/io.h"

/* The patterns as tokenizer.json writes them, for recognising a Split. */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char qwen2_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int clora__pattern_from_regex(const char *regex, clora__pattern *out)
{
    static const struct {
        const char *regex;
        clora__pattern pattern;
    } known[] = {
        {gpt2_regex, CLORA__PATTERN_GPT2},
        {llama3_regex, CLORA__PATTERN_LLAMA3},
        {qwen2_regex, CLORA__PATTERN_QWEN2},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; ++i)
        if (!strcmp(regex, known[i].regex)) {
            *out = known[i].pattern;
            return 1;
        }
    return 0;
}

const char *clora__pattern_name(clora__pattern pattern)
{
    switch (pattern) {
    case CLORA__PATTERN_GPT2:
        return "GPT-2";
    case CLORA__PATTERN_LLAMA3:
        return "Llama 3";
    case CLORA__PATTERN_QWEN2:
        return "Qwen2";
    }
    return "unknown";
}

/* ---- classes ------------------------------------------------------------------------------- */

enum { LETTER = 1, NUMBER = 2, SPACE = 4 };

static int white_space(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static unsigned classify(int32_t c)
{
    if (c < 0x80) { /* the common case, without a table look-up */
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
            return LETTER;
        if (c >= '0' && c <= '9')
            return NUMBER;
        return white_space(c) ? SPACE : 0;
    }
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return NUMBER;
    default:
        return white_space(c) ? SPACE : 0;
    }
}

/* A matcher's view of the text: code points with their classes. */
typedef struct view {
    const int32_t *c;
    size_t end;
} view;

static unsigned class_at(const view *v, size_t i)
{
    return i < v->end ? classify(v->c[i]) : 0;
}

static int32_t at(const view *v, size_t i)
{
    return i < v->end ? v->c[i] : -1;
}

static int32_t ascii_lower(int32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's 't 're 've 'm 'll 'd at i: the match's end, or 0. */
static size_t contraction(const view *v, size_t i, int any_case)
{
    if (at(v, i) != '\'')
        return 0;
    int32_t a = at(v, i + 1), b = at(v, i + 2);
    if (any_case) {
        a = ascii_lower(a);
        b = ascii_lower(b);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return i + 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return i + 3;
    return 0;
}

/* The end of the run of characters of class `cls` (or, with cls 0, of
 * characters in none of the classes) from i. */
static size_t run(const view *v, size_t i, unsigned cls)
{
    while (i < v->end && (cls ? (classify(v->c[i]) & cls) != 0 : classify(v->c[i]) == 0))
        ++i;
    return i;
}

/* \s+(?!\S)|\s+ at i, a space: a run of spaces leaves its last one to the
 * next piece unless the run ends the text. */
static size_t spaces(const view *v, size_t i)
{
    size_t j = run(v, i, SPACE);
    if (j == i)
        return i + 1; /* not reached: every character is in some alternative */
    return j - i >= 2 && j < v->end ? j - 1 : j;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_gpt2(const view *v, size_t i)
{
    size_t j = contraction(v, i, 0);
    if (j)
        return j;
    /* " ?": the space is taken when what follows it matches */
    const size_t k = at(v, i) == ' ' && i + 1 < v->end ? i + 1 : i;
    const unsigned cls = class_at(v, k);
    if (cls & (LETTER | NUMBER))
        return run(v, k, cls);
    if (cls == 0 && k < v->end)
        return run(v, k, 0);
    return spaces(v, i);
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+   (D: 3 for Llama 3, 1 for Qwen2) */
static size_t match_llama3(const view *v, size_t i, size_t digits)
{
    size_t j = contraction(v, i, 1);
    if (j)
        return j;
    const int32_t c = v->c[i];
    const unsigned cls = classify(c);
    if (cls & LETTER)
        return run(v, i, LETTER);
    if (c != '\r' && c != '\n' && !(cls & NUMBER) && (class_at(v, i + 1) & LETTER))
        return run(v, i + 1, LETTER);
    if (cls & NUMBER) {
        for (j = i; j < v->end && j - i < digits && (classify(v->c[j]) & NUMBER); ++j)
            ;
        return j;
    }
    const size_t k = c == ' ' && i + 1 < v->end ? i + 1 : i;
    if (class_at(v, k) == 0 && k < v->end) {
        j = run(v, k, 0);
        while (at(v, j) == '\r' || at(v, j) == '\n')
            ++j;
        return j;
    }
    /* \s*[\r\n]+: the run of spaces up to its last line break */
    const size_t end = run(v, i, SPACE);
    for (j = end; j > i; --j)
        if (v->c[j - 1] == '\r' || v->c[j - 1] == '\n')
            return j;
    return spaces(v, i);
}

static size_t match(clora__pattern pattern, const view *v, size_t i)
{
    switch (pattern) {
    case CLORA__PATTERN_LLAMA3:
        return match_llama3(v, i, 3);
    case CLORA__PATTERN_QWEN2:
        return match_llama3(v, i, 1);
    case CLORA__PATTERN_GPT2:
        break;
    }
    return match_gpt2(v, i);
}

/* The pattern's pieces of cps[start, end), appended to ends. */
static size_t split_range(clora__pattern pattern, const int32_t *cps, size_t start, size_t end,
                          size_t *ends, size_t count)
{
    const view v = {cps, end};
    for (size_t i = start; i < end;) {
        size_t j = match(pattern, &v, i);
        ends[count++] = j;
        i = j;
    }
    return count;
}

size_t clora__pretokenize(clora__pattern pattern, int split_digits, const int32_t *cps, size_t n,
                          size_t *ends)
{
    if (!split_digits)
        return split_range(pattern, cps, 0, n, ends, 0);
    size_t count = 0, start = 0;
    for (size_t i = 0; i < n; ++i) {
        if (!(classify(cps[i]) & NUMBER))
            continue;
        count = split_range(pattern, cps, start, i, ends, count);
        ends[count++] = i + 1;
        start = i + 1;
    }
    return split_range(pattern, cps, start, n, ends, count);
}
