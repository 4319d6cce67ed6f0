/* chat_template.c — the chat templates clora recognises and writes
 * itself (clora/tokenizer.h); there is no Jinja engine.
 *
 * A template is recognised by comparing its canonical form with that of
 * each known template. The canonical form is what decides the output:
 * the text between tags as Hugging Face's renderer leaves it
 * (trim_blocks: the newline after a block tag goes; lstrip_blocks: spaces
 * and tabs from a line's start to a block tag go; "-" strips the
 * whitespace on its side; comments go), and inside the tags the tokens
 * without the spaces between them, string literals decoded. So a template
 * laid out over several lines, or with the other kind of quotes, is the
 * same template. The default system message of the ChatML family is read
 * out of the template. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "io/io.h"

/* Markers in the canonical form; a template's text never holds them. */
#define TEXT_OPEN '\x01'
#define TEXT_CLOSE '\x02'
#define STRING_OPEN '\x03'
#define STRING_CLOSE '\x04'
#define SYSTEM_MARK "@SYSTEM@"

typedef struct known {
    clora_chat_format format;
    const char *name;
    int always_prompt; /* the assistant's header whatever add_generation_prompt says */
    const char *source;
} known;

static const known templates[] = {
    {CLORA_CHAT_CHATML, "ChatML", 0,
     "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
     "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
     "'<|im_start|>assistant\\n' }}{% endif %}"},
    {CLORA_CHAT_CHATML, "ChatML with a default system message", 0,
     "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
     "'<|im_start|>system\\n" SYSTEM_MARK "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
     "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
     "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
    {CLORA_CHAT_LLAMA3, "Llama 3", 0,
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
     "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
     "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
     "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
     "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"},
    {CLORA_CHAT_LLAMA3, "Llama 3 (always prompting)", 1,
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
     "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
     "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
     "endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' "
     "}}"},
};

/* ---- the canonical form ---------------------------------------------------------------------- */

static int jinja_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

typedef struct canon {
    clora__bytes out;
    clora__bytes text;   /* output text not yet written (whitespace control may cut it) */
    size_t from;         /* where the last text in `text` begins */
    int line_start;      /* that text begins a line of the template */
    int strip_next;      /* a "-" before the close: the next text loses its leading spaces */
    int trim_newline;    /* a block tag closed: the next text loses one leading newline */
    int ok;
} canon;

static void put(canon *c, const char *s, size_t n)
{
    if (c->ok && !clora__bytes_append(&c->out, s, n))
        c->ok = 0;
}

/* Writes the pending text (if any is left) as one text token. */
static void flush_text(canon *c)
{
    if (c->text.n) {
        const char open = TEXT_OPEN, close = TEXT_CLOSE;
        put(c, &open, 1);
        put(c, c->text.v, c->text.n);
        put(c, &close, 1);
    }
    c->text.n = 0;
}

/* Text between tags, after the whitespace control of the tag before it;
 * line_start: it begins the template or follows a newline. */
static void add_text(canon *c, const char *s, size_t n, int line_start)
{
    c->from = c->text.n;
    c->line_start = line_start;
    if (c->strip_next)
        while (n && jinja_space(*s))
            ++s, --n;
    else if (c->trim_newline && n && *s == '\n') {
        ++s, --n;
        c->line_start = 1;
    }
    c->strip_next = c->trim_newline = 0;
    if (n && c->ok && !clora__bytes_append(&c->text, s, n))
        c->ok = 0;
}

/* The whitespace control of a tag that opens: "-" strips all whitespace
 * of the text before it; a block or comment tag (lstrip_blocks) strips
 * the spaces and tabs back to the start of its line, when the text before
 * it reaches back to one, unless "+" says not to. */
static void open_tag(canon *c, char dash, int block)
{
    if (dash == '-') {
        while (c->text.n > c->from && jinja_space(c->text.v[c->text.n - 1]))
            c->text.n--;
    } else if (block && dash != '+') {
        size_t i = c->text.n;
        while (i > c->from && (c->text.v[i - 1] == ' ' || c->text.v[i - 1] == '\t'))
            --i;
        if (i > c->from ? c->text.v[i - 1] == '\n' : c->line_start)
            c->text.n = i;
    }
}

/* A string literal from s[0] (the quote), decoded; returns its length in
 * the template, or 0 when it does not end. */
static size_t string_literal(canon *c, const char *s, size_t n)
{
    const char quote = s[0], open = STRING_OPEN, close = STRING_CLOSE;
    put(c, &open, 1);
    for (size_t i = 1; i < n; ++i) {
        char ch = s[i];
        if (ch == quote) {
            put(c, &close, 1);
            return i + 1;
        }
        if (ch == '\\' && i + 1 < n) {
            static const char from[] = "ntr\\'\"", to[] = "\n\t\r\\'\"";
            const char *k = strchr(from, s[i + 1]);
            if (k && s[i + 1]) {
                put(c, &to[k - from], 1);
                ++i;
                continue;
            }
        }
        put(c, &ch, 1);
    }
    return 0;
}

/* The tokens of a tag from s (after its opening), up to and including its
 * close; returns the length, 0 when it does not close. */
static size_t tag_tokens(canon *c, const char *s, size_t n, char end)
{
    for (size_t i = 0; i < n;) {
        const char ch = s[i];
        if (jinja_space(ch)) {
            ++i;
            continue;
        }
        const int dash = ch == '-' && i + 2 < n && s[i + 1] == end && s[i + 2] == '}';
        if ((ch == end && i + 1 < n && s[i + 1] == '}') || dash) {
            const char close[2] = {end, '}'};
            put(c, " ", 1);
            put(c, close, 2);
            c->strip_next = dash;
            c->trim_newline = !dash && end == '%';
            return i + (dash ? 3 : 2);
        }
        put(c, " ", 1);
        if (ch == '\'' || ch == '"') {
            size_t len = string_literal(c, s + i, n - i);
            if (!len)
                return 0;
            i += len;
        } else if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' ||
                   (ch >= '0' && ch <= '9')) {
            size_t j = i;
            while (j < n && ((s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= 'a' && s[j] <= 'z') ||
                             s[j] == '_' || (s[j] >= '0' && s[j] <= '9')))
                ++j;
            put(c, s + i, j - i);
            i = j;
        } else {
            static const char *const pairs[] = {"==", "!=", "<=", ">=", "**", "//"};
            size_t len = 1;
            for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; ++k)
                if (i + 1 < n && s[i] == pairs[k][0] && s[i + 1] == pairs[k][1])
                    len = 2;
            put(c, s + i, len);
            i += len;
        }
    }
    return 0;
}

/* The canonical form of a template into *out (free() it); 0 when the
 * template does not lex (an unclosed tag or string) or holds a marker. */
static int canonical(const char *t, char **out)
{
    canon c;
    memset(&c, 0, sizeof c);
    c.ok = 1;
    const size_t n = strlen(t);
    for (size_t i = 0; i < n; ++i)
        if (t[i] >= TEXT_OPEN && t[i] <= STRING_CLOSE)
            return 0;
    size_t i = 0;
    while (c.ok && i < n) {
        const char *tag = NULL;
        for (size_t j = i; j + 1 < n && !tag; ++j)
            if (t[j] == '{' && (t[j + 1] == '%' || t[j + 1] == '{' || t[j + 1] == '#'))
                tag = t + j;
        add_text(&c, t + i, (size_t)((tag ? tag : t + n) - (t + i)), i == 0 || t[i - 1] == '\n');
        if (!tag)
            break;
        const char kind = tag[1];
        const char mark = tag + 2 < t + n ? tag[2] : '\0';
        i = (size_t)(tag - t) + 2 + (mark == '-' || mark == '+');
        open_tag(&c, mark, kind != '{');
        if (kind == '#') { /* a comment: nothing, but its whitespace control */
            const char *end = strstr(t + i, "#}");
            if (!end) {
                c.ok = 0;
                break;
            }
            int dash = end > t + i && end[-1] == '-';
            c.strip_next = dash;
            c.trim_newline = !dash;
            i = (size_t)(end - t) + 2;
            continue;
        }
        flush_text(&c);
        const char open[2] = {'{', kind};
        put(&c, open, 2);
        size_t len = tag_tokens(&c, t + i, n - i, kind == '{' ? '}' : '%');
        if (!len)
            c.ok = 0;
        i += len;
    }
    flush_text(&c);
    if (c.ok && !c.out.v && !clora__bytes_append(&c.out, "", 0))
        c.ok = 0;
    free(c.text.v);
    if (!c.ok) {
        free(c.out.v);
        return 0;
    }
    *out = c.out.v;
    return 1;
}

/* Whether the template is `k`; the default system message (new) into
 * *system when `k` has one. */
static int same_template(const char *form, const known *k, char **system)
{
    char *want = NULL;
    if (!canonical(k->source, &want))
        return 0;
    const char *mark = strstr(want, SYSTEM_MARK);
    int same;
    if (!mark) {
        same = !strcmp(form, want);
    } else {
        const size_t head = (size_t)(mark - want), tail = strlen(mark + strlen(SYSTEM_MARK));
        const size_t n = strlen(form);
        same = n >= head + tail && !memcmp(form, want, head) &&
               !memcmp(form + n - tail, mark + strlen(SYSTEM_MARK), tail);
        for (size_t i = head; same && i < n - tail; ++i)
            same = form[i] < TEXT_OPEN || form[i] > STRING_CLOSE;
        if (same && system) {
            *system = clora__malloc(n - tail - head + 1);
            if (*system) {
                memcpy(*system, form + head, n - tail - head);
                (*system)[n - tail - head] = '\0';
            }
            same = *system != NULL;
        }
    }
    free(want);
    return same;
}

static clora_status recognize(const char *chat_template, const known **out, char **system)
{
    if (!chat_template)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "no chat template");
    char *form = NULL;
    if (canonical(chat_template, &form)) {
        for (size_t i = 0; i < sizeof templates / sizeof templates[0]; ++i)
            if (same_template(form, &templates[i], system)) {
                free(form);
                *out = &templates[i];
                return CLORA_OK;
            }
        free(form);
    }
    return clora__fail(CLORA_ERR_UNSUPPORTED,
                       "the model's chat template is none of those clora writes (ChatML, "
                       "ChatML with a default system message, Llama 3); format the prompt "
                       "yourself and pass it as text (clora encode --text, or --tokens)");
}

clora_status clora_chat_template_recognize(const char *chat_template, clora_chat_format *format)
{
    const known *k = NULL;
    clora_status status = recognize(chat_template, &k, NULL);
    if (status == CLORA_OK && format)
        *format = k->format;
    return status;
}

/* ---- writing the prompt ---------------------------------------------------------------------- */

/* Python's str.isspace for one code point. */
static int python_isspace(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Python's str.strip(): Jinja's trim filter. */
static void python_strip(const char **s, size_t *n)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t k;
    while (*n && (k = utf8proc_iterate((const utf8proc_uint8_t *)*s, (utf8proc_ssize_t)*n, &c)) >
                     0 &&
           python_isspace(c)) {
        *s += k;
        *n -= (size_t)k;
    }
    while (*n) {
        size_t back = *n - 1;
        while (back && ((unsigned char)(*s)[back] & 0xC0) == 0x80)
            --back;
        k = utf8proc_iterate((const utf8proc_uint8_t *)*s + back, (utf8proc_ssize_t)(*n - back),
                             &c);
        if (k <= 0 || !python_isspace(c))
            break;
        *n = back;
    }
}

typedef struct writer {
    clora__bytes out;
    int ok;
} writer;

static void write_text(writer *w, const char *s)
{
    if (w->ok && !clora__bytes_append(&w->out, s, strlen(s)))
        w->ok = 0;
}

static void write_bytes(writer *w, const char *s, size_t n)
{
    if (w->ok && !clora__bytes_append(&w->out, s, n))
        w->ok = 0;
}

clora_status clora_chat_apply(const char *chat_template, const char *bos_token,
                              const clora_chat_message *messages, size_t count,
                              int add_generation_prompt, char **text)
{
    if (!chat_template || !text || (count && !messages))
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_chat_apply: NULL argument");
    *text = NULL;
    for (size_t i = 0; i < count; ++i)
        if (!messages[i].role || !messages[i].content)
            return clora__fail(CLORA_ERR_NULL_ARGUMENT,
                               "clora_chat_apply: message %zu has no role or no content", i);
    const known *k = NULL;
    char *system = NULL;
    clora_status status = recognize(chat_template, &k, &system);
    if (status != CLORA_OK)
        return status;
    if (k->format == CLORA_CHAT_LLAMA3 && !bos_token)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT,
                           "clora_chat_apply: the Llama 3 template writes BOS: bos_token is NULL");
    writer w = {{NULL, 0, 0}, 1};
    if (k->format == CLORA_CHAT_CHATML) {
        if (system && count && strcmp(messages[0].role, "system")) {
            write_text(&w, "<|im_start|>system\n");
            write_text(&w, system);
            write_text(&w, "<|im_end|>\n");
        }
        for (size_t i = 0; i < count; ++i) {
            write_text(&w, "<|im_start|>");
            write_text(&w, messages[i].role);
            write_text(&w, "\n");
            write_text(&w, messages[i].content);
            write_text(&w, "<|im_end|>\n");
        }
        if (add_generation_prompt || k->always_prompt)
            write_text(&w, "<|im_start|>assistant\n");
    } else {
        for (size_t i = 0; i < count; ++i) {
            const char *content = messages[i].content;
            size_t n = strlen(content);
            python_strip(&content, &n);
            if (i == 0)
                write_text(&w, bos_token);
            write_text(&w, "<|start_header_id|>");
            write_text(&w, messages[i].role);
            write_text(&w, "<|end_header_id|>\n\n");
            write_bytes(&w, content, n);
            write_text(&w, "<|eot_id|>");
        }
        if (add_generation_prompt || k->always_prompt)
            write_text(&w, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    }
    if (w.ok && !w.out.v)
        write_bytes(&w, "", 0);
    free(system);
    if (!w.ok) {
        free(w.out.v);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "clora_chat_apply");
    }
    *text = w.out.v;
    return CLORA_OK;
}

clora_status clora_tokenizer_apply_chat(const clora_tokenizer *tokenizer,
                                        const clora_chat_message *messages, size_t count,
                                        int add_generation_prompt, char **text)
{
    if (!tokenizer || !text)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_tokenizer_apply_chat: NULL argument");
    *text = NULL;
    if (!tokenizer->chat_template)
        return clora__fail(CLORA_ERR_NOT_FOUND,
                           "the model ships no chat template; format the prompt yourself");
    const char *bos = tokenizer->bos >= 0 ? tokenizer->vocab.tokens[tokenizer->bos] : NULL;
    return clora_chat_apply(tokenizer->chat_template, bos, messages, count, add_generation_prompt,
                            text);
}
