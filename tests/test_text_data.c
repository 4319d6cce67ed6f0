/* test_text_data.c — the readers of `clora tokenize` (tools/text_data.c):
 * RFC 4180 quoting in CSV and TSV, LABEL<TAB>TEXT lines, the three kinds
 * of JSON Lines examples, and the one-line message for each bad file.
 * Needs no device and no tokenizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text_data.h"

/* Parses `size` bytes of `content` (a copy) as `format` with the default
 * columns unless given. */
static int parse_bytes(text_data *d, const char *content, size_t size, text_format format,
                       const char *text_column, const char *label_column)
{
    char *copy = malloc(size + 1);
    assert_non_null(copy);
    memcpy(copy, content, size);
    copy[size] = '\0';
    return text_data_parse(d, copy, size, "in.txt", format, text_column ? text_column : "text",
                           label_column ? label_column : "label");
}

static int parse(text_data *d, const char *content, text_format format)
{
    return parse_bytes(d, content, strlen(content), format, NULL, NULL);
}

/* Fails unless parsing gives exactly `message`. */
static void expect_error(const char *content, text_format format, const char *message)
{
    text_data d;
    if (parse(&d, content, format))
        fail_msg("parsed: %s", content);
    assert_string_equal(d.error, message);
    text_data_free(&d);
}

static void formats_by_name(void **state)
{
    (void)state;
    assert_int_equal(text_format_of("a/b.csv"), TEXT_CSV);
    assert_int_equal(text_format_of("B.TSV"), TEXT_TSV);
    assert_int_equal(text_format_of("chat.jsonl"), TEXT_JSONL);
    assert_int_equal(text_format_of("x.json"), TEXT_LINES);
    assert_int_equal(text_format_of("csv"), TEXT_LINES);
    assert_string_equal(text_format_names[TEXT_JSONL], "jsonl");
    assert_null(text_format_names[TEXT_JSONL + 1]);
}

static void csv_quoting(void **state)
{
    (void)state;
    text_data d;
    /* a byte-order mark, CRLF, a quoted field with a separator, doubled
     * quotes and a line break, empty fields, blank lines, no last newline */
    const char csv[] = "\xEF\xBB\xBFid,body,tag\r\n"
                       "1,\"fox, \"\"quick\"\"\r\nand brown\",animal\r\n"
                       "\r\n"
                       "2,,greeting\n"
                       "3,\"\",\"x\"\"\"\n"
                       "4,plain \"inner\" quotes,y";
    assert_true(parse_bytes(&d, csv, strlen(csv), TEXT_CSV, "body", "tag"));
    assert_int_equal(d.kind, TEXT_LABELLED);
    assert_int_equal(d.count, 4);
    assert_string_equal(d.examples[0].text, "fox, \"quick\"\r\nand brown");
    assert_string_equal(d.examples[0].label, "animal");
    assert_int_equal(d.examples[0].line, 2);
    assert_string_equal(d.examples[1].text, "");
    assert_int_equal(d.examples[1].line, 5);
    assert_string_equal(d.examples[2].label, "x\"");
    assert_string_equal(d.examples[3].text, "plain \"inner\" quotes");
    assert_int_equal(d.examples[3].line, 7);
    text_data_free(&d);

    /* TSV: the same rules with a tab; a quoted field may hold one */
    const char tsv[] = "label\ttext\nb\t\"one\ttwo\"\na\tthree\n";
    assert_true(parse_bytes(&d, tsv, strlen(tsv), TEXT_TSV, NULL, NULL));
    assert_int_equal(d.count, 2);
    assert_string_equal(d.examples[0].text, "one\ttwo");
    assert_string_equal(d.examples[1].label, "a");
    text_data_free(&d);
}

static void csv_errors(void **state)
{
    (void)state;
    expect_error("", TEXT_CSV, "in.txt is empty (a CSV file begins with a header row)");
    expect_error("\n\r\n", TEXT_TSV, "in.txt is empty (a TSV file begins with a header row)");
    expect_error("text,label\n", TEXT_CSV, "in.txt has a header row and no rows after it");
    expect_error("text,label\n\"ok\",a\n\"never\nclosed,b\n", TEXT_CSV,
                 "in.txt line 3, column 1 (\"text\"): the quote that opens this field is never "
                 "closed");
    expect_error("text,label\n\"a\"b,c\n", TEXT_CSV,
                 "in.txt line 2, column 1 (\"text\"): text after the closing quote (a quote "
                 "inside a quoted field is written twice: \"\")");
    expect_error("text,label\n\"two\nlines\",a\nb\n", TEXT_CSV,
                 "in.txt line 4: 1 field where the header has 2");
    expect_error("text,label\nx,a,extra\n", TEXT_CSV,
                 "in.txt line 2: 3 fields where the header has 2");
    expect_error("text,label\nx,\n", TEXT_CSV,
                 "in.txt line 2, column 2 (\"label\"): the label is empty");
    expect_error("sentence,label\nx,a\n", TEXT_CSV,
                 "in.txt line 1: no column \"text\" (--text-column) in the header, which has "
                 "\"sentence\", \"label\"");
    expect_error("animal\tthe fox\n", TEXT_TSV,
                 "in.txt line 1: no column \"text\" (--text-column) in the header, which has "
                 "\"animal\", \"the fox\"; LABEL<TAB>TEXT lines without a header are --format "
                 "lines");
    expect_error("text,label,text\nx,a,y\n", TEXT_CSV,
                 "in.txt line 1: the header names column \"text\" twice");
    text_data d;
    assert_false(parse_bytes(&d, "text,label\nx\0y,a\n", 17, TEXT_CSV, NULL, NULL));
    assert_string_equal(d.error, "in.txt line 2 holds a NUL byte: not a text file");
    text_data_free(&d);
    /* the column options */
    assert_false(parse_bytes(&d, "text,label\nx,a\n", 15, TEXT_CSV, "text", "class"));
    assert_string_equal(d.error, "in.txt line 1: no column \"class\" (--label-column) in the "
                                 "header, which has \"text\", \"label\"");
    text_data_free(&d);
}

static void lines(void **state)
{
    (void)state;
    text_data d;
    assert_true(parse(&d, "a\tthe fox\r\n\n\nb\tthe\tdog", TEXT_LINES));
    assert_int_equal(d.count, 2);
    assert_string_equal(d.examples[0].label, "a");
    assert_string_equal(d.examples[0].text, "the fox");
    assert_string_equal(d.examples[1].text, "the\tdog");
    assert_int_equal(d.examples[1].line, 4);
    text_data_free(&d);
    expect_error("a\tok\nno tab here\n", TEXT_LINES, "in.txt line 2 is not LABEL<TAB>TEXT");
    expect_error("\tno label\n", TEXT_LINES, "in.txt line 1 is not LABEL<TAB>TEXT");
    expect_error("\n\n", TEXT_LINES, "in.txt has no LABEL<TAB>TEXT lines");
}

static void jsonl_kinds(void **state)
{
    (void)state;
    text_data d;
    assert_true(parse(&d, "{\"text\": \"one\"}\n\n  \r\n{\"text\": \"two \\u00e9\"}\r\n",
                      TEXT_JSONL));
    assert_int_equal(d.kind, TEXT_PLAIN);
    assert_int_equal(d.count, 2);
    assert_string_equal(d.examples[1].text, "two \xc3\xa9");
    assert_int_equal(d.examples[1].line, 4);
    text_data_free(&d);

    assert_true(parse(&d, "{\"prompt\": \"Q: 1+1?\", \"completion\": \" 2\"}\n"
                          "{\"response\": \" yes\", \"prompt\": \"Ok?\"}\n",
                      TEXT_JSONL));
    assert_int_equal(d.kind, TEXT_PROMPTED);
    assert_string_equal(d.examples[0].text, "Q: 1+1?");
    assert_string_equal(d.examples[0].completion, " 2");
    assert_string_equal(d.examples[1].completion, " yes");
    text_data_free(&d);

    assert_true(parse(&d, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, "
                          "{\"content\": \"Hello!\", \"role\": \"assistant\"}]}\n",
                      TEXT_JSONL));
    assert_int_equal(d.kind, TEXT_CHAT);
    assert_int_equal(d.examples[0].message_count, 2);
    assert_string_equal(d.examples[0].messages[0].role, "user");
    assert_string_equal(d.examples[0].messages[1].content, "Hello!");
    text_data_free(&d);
}

static void jsonl_errors(void **state)
{
    (void)state;
    expect_error("{\"text\": \"a\"}\n{\"text\": \"b\",}\n", TEXT_JSONL,
                 "in.txt line 2, column 14: not JSON: string or '}' expected near '}'");
    expect_error("{\"text\": \"a\", \"text\": \"b\"}", TEXT_JSONL,
                 "in.txt line 1, column 20: not JSON: duplicate object key near '\"text\"'");
    expect_error("[\"text\"]\n", TEXT_JSONL,
                 "in.txt line 1: not a JSON object; an example is {\"text\": ...}, {\"prompt\": "
                 "..., \"completion\": ...}, {\"prompt\": ..., \"response\": ...} or "
                 "{\"messages\": [{\"role\": ..., \"content\": ...}, ...]}");
    expect_error("{\"text\": \"a\", \"id\": 3}\n", TEXT_JSONL,
                 "in.txt line 1: unknown key \"id\" in a text example; an example is {\"text\": "
                 "...}, {\"prompt\": ..., \"completion\": ...}, {\"prompt\": ..., \"response\": "
                 "...} or {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}");
    expect_error("{\"input\": \"a\"}\n", TEXT_JSONL,
                 "in.txt line 1: no \"text\", \"prompt\" or \"messages\"; an example is "
                 "{\"text\": ...}, {\"prompt\": ..., \"completion\": ...}, {\"prompt\": ..., "
                 "\"response\": ...} or {\"messages\": [{\"role\": ..., \"content\": ...}, "
                 "...]}");
    expect_error("{\"text\": \"a\", \"prompt\": \"b\", \"completion\": \"c\"}\n", TEXT_JSONL,
                 "in.txt line 1: \"text\" and \"prompt\" in one example; an example is "
                 "{\"text\": ...}, {\"prompt\": ..., \"completion\": ...}, {\"prompt\": ..., "
                 "\"response\": ...} or {\"messages\": [{\"role\": ..., \"content\": ...}, "
                 "...]}");
    expect_error("{\"text\": \"a\"}\n{\"prompt\": \"b\", \"completion\": \"c\"}\n", TEXT_JSONL,
                 "in.txt line 2: a prompt/completion example in a file of text examples (line "
                 "1); one file holds one kind");
    expect_error("{\"prompt\": \"b\"}\n", TEXT_JSONL,
                 "in.txt line 1: a \"prompt\" goes with a \"completion\" or a \"response\" (one "
                 "of them)");
    expect_error("{\"prompt\": \"b\", \"completion\": \"c\", \"response\": \"d\"}\n",
                 TEXT_JSONL,
                 "in.txt line 1: a \"prompt\" goes with a \"completion\" or a \"response\" (one "
                 "of them)");
    expect_error("{\"prompt\": \"b\", \"completion\": 7}\n", TEXT_JSONL,
                 "in.txt line 1: \"completion\" must be a string");
    expect_error("{\"messages\": []}\n", TEXT_JSONL,
                 "in.txt line 1: \"messages\" must be a list of messages, not empty");
    expect_error("{\"messages\": [{\"role\": \"user\", \"content\": null}]}\n", TEXT_JSONL,
                 "in.txt line 1: message 1 must be {\"role\": ..., \"content\": ...} with two "
                 "strings");
    expect_error("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", "
                 "\"content\": \"b\", \"name\": \"x\"}]}\n",
                 TEXT_JSONL,
                 "in.txt line 1: message 2 has key \"name\"; a message is {\"role\": ..., "
                 "\"content\": ...}");
    expect_error("\n \n", TEXT_JSONL, "in.txt has no examples (one JSON object a line)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(formats_by_name), cmocka_unit_test(csv_quoting),
        cmocka_unit_test(csv_errors),      cmocka_unit_test(lines),
        cmocka_unit_test(jsonl_kinds),     cmocka_unit_test(jsonl_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
