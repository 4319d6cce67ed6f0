/* fuzz_chat_template.c — a chat template and a conversation from a
 * stranger through the template recogniser and the prompt writer.
 *
 * The input, in parts (FUZZ_SEPARATOR between them):
 *   0  the template text; also, escaped, the default system message of a
 *      ChatML template built around it
 *   1  one byte of flags (bit 0: add_generation_prompt; bit 1: no BOS;
 *      bits 2-4: which known template to apply as well), then the BOS text
 *   2… up to MAX_MESSAGES messages, each its role, a newline, its content
 *
 * Checked: recognising is deterministic; a template recognised is applied
 * (BOS given) and one not recognised is refused; the text written is no
 * longer than its parts allow, and for the ChatML family it is exactly
 * the turns written out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clora/tokenizer.h"
#include "fuzz.h"

#define MAX_MESSAGES 6
#define TURN_OVERHEAD 64 /* the tags of one turn, both formats, with room */

static const char chatml[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\\n' }}{% endif %}";

/* ChatML with a default system message, around the message (escaped). */
static const char system_head[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\\n";
static const char system_tail[] =
    "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\\n' }}{% endif %}";

static const char smollm2_layout[] =
    "{#- SmolLM2's template over several lines -#}\n"
    "{% for message in messages %}\n"
    "  {% if loop.first and messages[0][\"role\"] != \"system\" %}\n"
    "    {{- \"<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by "
    "Hugging Face<|im_end|>\\n\" }}\n"
    "  {%- endif %}\n"
    "  {{- \"<|im_start|>\" + message[\"role\"] + \"\\n\" + message[\"content\"] + "
    "\"<|im_end|>\" + \"\\n\" }}\n"
    "{%- endfor %}\n"
    "{% if add_generation_prompt %}\n"
    "  {{- \"<|im_start|>assistant\\n\" }}\n"
    "{%- endif %}\n";

static const char llama3[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
    "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

static const char llama3_layout[] =
    "{% set loop_messages = messages %}\n"
    "{% for message in loop_messages %}\n"
    "    {% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
    "message['content'] | trim + '<|eot_id|>' %}\n"
    "    {% if loop.index0 == 0 %}\n"
    "        {% set content = bos_token + content %}\n"
    "    {% endif %}\n"
    "    {{- content -}}\n"
    "{% endfor %}\n"
    "{% if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    "{% endif %}";

typedef struct known_template {
    const char *text;
    clora_chat_format format;
    const char *system; /* the default system message, ChatML only */
} known_template;

static const known_template knowns[] = {
    {chatml, CLORA_CHAT_CHATML, NULL},
    {smollm2_layout, CLORA_CHAT_CHATML,
     "You are a helpful AI assistant named SmolLM, trained by Hugging Face"},
    {llama3, CLORA_CHAT_LLAMA3, NULL},
    {llama3_layout, CLORA_CHAT_LLAMA3, NULL},
};

static char *copy(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

static void fail(const char *what, const char *chat_template)
{
    fprintf(stderr, "fuzz_chat_template: %s\ntemplate: %s\n", what, chat_template);
    abort();
}

/* The ChatML family's text for the messages, exactly; NULL when out of
 * memory. */
static char *chatml_text(const char *system, const clora_chat_message *messages, size_t count,
                         int prompt)
{
    size_t n = (system ? strlen(system) : 0) + 2 * TURN_OVERHEAD;
    for (size_t i = 0; i < count; ++i)
        n += strlen(messages[i].role) + strlen(messages[i].content) + TURN_OVERHEAD;
    char *s = malloc(n);
    if (!s)
        return NULL;
    s[0] = '\0';
    if (system && count && strcmp(messages[0].role, "system"))
        strcat(strcat(strcat(s, "<|im_start|>system\n"), system), "<|im_end|>\n");
    for (size_t i = 0; i < count; ++i) {
        strcat(strcat(strcat(s, "<|im_start|>"), messages[i].role), "\n");
        strcat(strcat(s, messages[i].content), "<|im_end|>\n");
    }
    if (prompt)
        strcat(s, "<|im_start|>assistant\n");
    return s;
}

/* Applies the template and checks the text against what recognising it
 * said; `system` (may be NULL) is its default system message when known,
 * `exact` whether the ChatML text is known exactly. */
static void apply(const char *chat_template, const char *bos, const clora_chat_message *messages,
                  size_t count, int prompt, int exact, const char *system)
{
    clora_chat_format format = CLORA_CHAT_CHATML, again = CLORA_CHAT_CHATML;
    const clora_status recognized = clora_chat_template_recognize(chat_template, &format);
    if (clora_chat_template_recognize(chat_template, &again) != recognized ||
        (recognized == CLORA_OK && again != format))
        fail("recognising twice gave two answers", chat_template);
    char *text = NULL;
    const clora_status status = clora_chat_apply(chat_template, bos, messages, count, prompt,
                                                 &text);
    const int writable = recognized == CLORA_OK && (format == CLORA_CHAT_CHATML || bos);
    if (status == CLORA_ERR_OUT_OF_HOST_MEMORY) {
        free(text);
        return;
    }
    if (writable != (status == CLORA_OK) || (status == CLORA_OK) != (text != NULL))
        fail("applying disagrees with recognising", chat_template);
    if (!text)
        return;
    size_t bound = strlen(chat_template) + (bos ? strlen(bos) : 0) + 2 * TURN_OVERHEAD;
    for (size_t i = 0; i < count; ++i)
        bound += strlen(messages[i].role) + strlen(messages[i].content) + TURN_OVERHEAD;
    const size_t n = strlen(text);
    if (n > bound)
        fail("the text is longer than its parts", chat_template);
    if (format == CLORA_CHAT_LLAMA3 && count && strncmp(text, bos, strlen(bos)))
        fail("the Llama 3 text does not begin with BOS", chat_template);
    const char *header = format == CLORA_CHAT_LLAMA3
                             ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                             : "<|im_start|>assistant\n";
    if (prompt && (n < strlen(header) || strcmp(text + n - strlen(header), header)))
        fail("the text does not end with the assistant's header", chat_template);
    if (format == CLORA_CHAT_CHATML && exact) {
        char *want = chatml_text(system, messages, count, prompt);
        if (want && strcmp(text, want))
            fail("the ChatML text is not the turns written out", chat_template);
        free(want);
    }
    free(text);
}

/* A ChatML template whose default system message is `system`, escaped
 * into its single-quoted literal; NULL when out of memory. */
static char *with_system(const char *system)
{
    const size_t n = strlen(system);
    char *t = malloc(sizeof system_head + 2 * n + sizeof system_tail);
    if (!t)
        return NULL;
    char *p = t;
    memcpy(p, system_head, sizeof system_head - 1);
    p += sizeof system_head - 1;
    for (size_t i = 0; i < n; ++i) {
        if (system[i] == '\'' || system[i] == '\\')
            *p++ = '\\';
        *p++ = system[i];
    }
    memcpy(p, system_tail, sizeof system_tail);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *parts[2 + MAX_MESSAGES];
    size_t sizes[2 + MAX_MESSAGES];
    const size_t n = fuzz_split(data, size, parts, sizes, 2 + MAX_MESSAGES);
    const unsigned flags = n > 1 && sizes[1] ? parts[1][0] : 0;
    char *chat_template = copy(parts[0], sizes[0]);
    char *bos = n > 1 && !(flags & 2) ? copy(parts[1] + !!sizes[1], sizes[1] - !!sizes[1]) : NULL;
    clora_chat_message messages[MAX_MESSAGES];
    char *texts[MAX_MESSAGES];
    size_t count = 0;
    for (size_t i = 2; i < n; ++i) {
        char *s = copy(parts[i], sizes[i]);
        if (!s)
            break;
        texts[count] = s;
        char *newline = strchr(s, '\n');
        if (newline)
            *newline = '\0';
        messages[count].role = s;
        messages[count++].content = newline ? newline + 1 : s + strlen(s);
    }
    const int prompt = flags & 1;
    if (chat_template) {
        apply(chat_template, bos, messages, count, prompt, 0, NULL);
        /* as the default system message: exactly what is written, unless it
         * holds the bytes the canonical form keeps for its markers */
        if (!strpbrk(chat_template, "\x01\x02\x03\x04")) {
            char *t = with_system(chat_template);
            if (t) {
                if (clora_chat_template_recognize(t, NULL) != CLORA_OK)
                    fail("a default system message is not recognised", t);
                apply(t, bos, messages, count, prompt, 1, chat_template);
            }
            free(t);
        }
    }
    const known_template *k = &knowns[(flags >> 2) % (sizeof knowns / sizeof knowns[0])];
    clora_chat_format format;
    if (clora_chat_template_recognize(k->text, &format) != CLORA_OK || format != k->format)
        fail("a known template is not recognised", k->text);
    apply(k->text, bos, messages, count, prompt, 1, k->system);
    for (size_t i = 0; i < count; ++i)
        free(texts[i]);
    free(bos);
    free(chat_template);
    return 0;
}
