#!/usr/bin/env python3
"""Writes a small WordPiece vocabulary and the token ids Hugging Face's
BertTokenizer gives for texts chosen to exercise every rule (case, accents,
punctuation, CJK, control characters, Unicode normalisation, long and
unknown words, special tokens written in the text), under four option
sets. tests/test_tokenizer.c compares clora's tokenizer with them.

    /tmp/peftenv/bin/python make_tokenizer_golden.py

(the environment of make_peft_golden.py). Writes wordpiece_vocab.txt and
tokenizer_reference.json.
"""
import json
import os

import transformers
from transformers import BertTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))

WORDS = """the quick brown fox jump over lazy dog un hello world cafe naive resume uber
strasse straße i istanbul don t e mail me example com line sep mixed text a b c d tabs and
newlines multiple spaces quoted dash que smile hello world 1 2 3 4 5 6 7 8 ü é ß
Hello World The Café Über İ over""".split()
PIECES = "##s ##ed ##ing ##aff ##able ##bul ##ul ##x ##t ##e ##é ##ß ##3 ##4 ##5".split()
PUNCT = list("!,.?'-()@\"“”—…¿[]$")
CJK = list("中文字")
GREEK = list("σςοδα") + ["##" + c for c in "σςοδα"]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]

TEXTS = [
    "Hello, World!",
    "The quick brown fox jumped over the lazy dog.",
    "unaffable",
    "Café naïve résumé",
    "Über straße",
    "中文 mixed中文text",
    "tabs\tand\nnewlines\r\n  multiple   spaces",
    "a\u0001b\u200bc\u00adD\ufffde\u007f",
    "İstanbul",
    "e\u0301 cafe\u0301",
    "a" * 101,
    "a" * 100,
    "xyzzy",
    "[CLS] hello [SEP]",
    "foo[MASK]bar [PAD][UNK]",
    "“quoted” — dash… ¿qué?",
    "\U0001F600 smile",
    "line\u2028sep\u2029text",
    "",
    "   ",
    "123,456.78 $5",
    "don't e-mail me@example.com",
    "ΟΔΟΣ ΟΔΟΣ. ΟΔΟΣ'Α Σ ΑΣΑ",
]

OPTIONS = [
    {"name": "uncased", "do_lower_case": True, "strip_accents": None,
     "tokenize_chinese_chars": True},
    {"name": "cased", "do_lower_case": False, "strip_accents": None,
     "tokenize_chinese_chars": True},
    {"name": "uncased_keep_accents", "do_lower_case": True, "strip_accents": False,
     "tokenize_chinese_chars": True},
    {"name": "cased_strip_no_cjk", "do_lower_case": False, "strip_accents": True,
     "tokenize_chinese_chars": False},
]

MAX_LENGTH = 8


def main():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for token in WORDS + PIECES + PUNCT + CJK + GREEK + LETTERS + ["##" + c for c in LETTERS]:
        if token not in vocab:
            vocab.append(token)
    vocab_path = os.path.join(HERE, "wordpiece_vocab.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    cases = []
    for opts in OPTIONS:
        tok = BertTokenizer(vocab_path, do_lower_case=opts["do_lower_case"],
                            strip_accents=opts["strip_accents"],
                            tokenize_chinese_chars=opts["tokenize_chinese_chars"])
        for text in TEXTS:
            enc = tok(text, max_length=MAX_LENGTH, truncation=True, padding="max_length")
            cases.append({
                "options": opts["name"],
                "text": text,
                "ids": tok.encode(text, add_special_tokens=False),
                "encoded_ids": enc["input_ids"],
                "encoded_mask": enc["attention_mask"],
            })
    out = {
        "generator": "tests/golden/make_tokenizer_golden.py",
        "transformers": transformers.__version__,
        "vocab": "wordpiece_vocab.txt",
        "max_length": MAX_LENGTH,
        "options": OPTIONS,
        "cases": cases,
    }
    with open(os.path.join(HERE, "tokenizer_reference.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print("wrote wordpiece_vocab.txt (%d tokens) and %d cases" % (len(vocab), len(cases)))


if __name__ == "__main__":
    main()
