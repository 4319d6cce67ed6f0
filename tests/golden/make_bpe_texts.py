#!/usr/bin/env python3
"""Writes bpe_texts.json: the texts clora's byte-level BPE tokenizers are
checked on (tests/test_bpe.c), against the ids make_bpe_golden.py gets from
Hugging Face's tokenizers and from llama.cpp.

Hand-written texts first (prose, code, numbers, runs of spaces and line
breaks, tabs, accents, CJK, emoji, special tokens inside the text,
contractions, mixed scripts, Unicode spaces), then texts put together from
the same kinds of pieces by a seeded random generator, so the file is the
same on every run. Texts hold no U+0000 (the C API takes NUL-terminated
text) and are valid UTF-8.

    python3 tests/golden/make_bpe_texts.py
"""
import json
import os
import random

HAND = [
    # plain and empty
    "", " ", "  ", "\n", "\t", "a", "Hello", "Hello world", " Hello world", "Hello world ",
    "hello, world!", "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times, it was the age of wisdom.",
    "Call me Ishmael. Some years ago—never mind how long precisely—having little money...",
    "\"Quoted\" and 'single-quoted' text; semi:colons, (parens) [brackets] {braces}.",
    "What?! No... Yes!!! Maybe???",
    "e-mail: someone@example.com, web: https://example.org/path?q=1&r=two#frag",
    "ALL CAPS SENTENCE WITH SHOUTING",
    "MiXeD cAsE tExT",
    # contractions
    "it's", "don't", "we're", "I've", "I'm", "they'll", "he'd", "It's NOT mine", "I'VE SEEN IT",
    "WE'RE HERE", "THEY'LL GO", "HE'D SAY", "I'M", "DON'T", "'s", "'t", "'re", "'ve", "'m", "'ll",
    "'d", "''s", "'S", "'sup", "rock'n'roll", "o'clock", "the cats' toys", "James's book",
    "' s", "'", "''", "'''", "x'y'z", "l'homme", "aujourd'hui",
    # numbers
    "0", "7", "42", " 42", "  42", "123", "1234", "12345", "1234567", "12345678901234567890",
    "3.14159", "-2.5e-3", "1,000,000", "$19.99", "50%", "2024-01-31", "12:30:45",
    "phone: +1 (555) 123-4567", "x2 y10 z100", "v1.2.3", "abc123def456", "0x1F 0b1010 0o777",
    "١٢٣ ٤٥٦", "٣.١٤", "१२३४", "½ ¼ ¾", "Ⅻ Ⅳ", "²³¹", "①②③", "10th 21st 3rd",
    # whitespace runs
    "a  b", "a   b", "a    b", "a\tb", "a\t\tb", "a\nb", "a\n\nb", "a\n\n\nb", "a\r\nb",
    "a \n b", "a  \n  b", "   leading", "trailing   ", "\n\nleading newlines", "trailing newlines\n\n",
    " \t \n \t ", "\t\tindented\n\t\t\tmore", "line one\nline two\nline three\n",
    "spaces    then\ttabs\t\tthen\nnewlines\n\n\nend", "\r\r\n\n\r", "  \n", "\n  ", " \n ",
    "word \n\n word", "end.  \n", "x \t", "\t x", "\u00a0nbsp\u00a0here", "ideographic\u3000space",
    "line\u2028separator", "para\u2029separator", "en\u2002em\u2003thin\u2009space",
    "zero\u200bwidth", "soft\u00adhyphen", "\x0bvertical\x0cform", "\x85next line",
    # code
    "def f(x):\n    return x * 2\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "#include <stdio.h>\nint main(void) { printf(\"hi\\n\"); return 0; }",
    "if x == 1 and y != 2 or not z:\n        pass",
    "const add = (a, b) => a + b; // arrow",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "SELECT * FROM users WHERE id = 42 ORDER BY name;",
    "<div class=\"box\"><p>Hello &amp; welcome</p></div>",
    "    four spaces\n        eight spaces\n            twelve",
    "x+=1;y-=2;z*=3;w/=4;v%=5;u**=6",
    "a_b_c snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
    "$ ls -la | grep '.txt' > out.log 2>&1",
    "```python\nprint('hi')\n```",
    "// TODO: fix this\n/* block\n * comment */",
    "#!/bin/bash\necho \"$HOME\"\n",
    "==> ---> <=> !== === ... ,,, ;;; ::: ???",
    # accents and normalisation
    "café", "naïve", "résumé", "Ångström", "São Paulo", "Zürich", "Kraków", "Ελληνικά",
    "cafe\u0301", "n\u0303", "A\u030a", "e\u0301\u0301", "\u0301leading mark",
    "Ǆ ǅ ǆ", "ﬁ ﬂ", "ẞ ß", "İstanbul ıi", "ΣΑΣ σας",
    # CJK
    "你好世界", "我爱北京天安门。", "日本語のテキストです。", "ひらがな カタカナ 漢字",
    "한국어 텍스트", "안녕하세요, 세계!", "中文，标点！", "混合English和中文", "東京2024年",
    "ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ", "１２３４５",
    # emoji
    "😀", "😀😃😄", "I ❤️ you", "👩‍💻 coding", "👨‍👩‍👧‍👦", "🇺🇸🇯🇵", "👍🏽", "🎉 party 🎊",
    "emoji😀inside", "⭐️✨🔥", "☃ ☂ ☀", "🏳️‍🌈",
    # special tokens inside text
    "<|endoftext|>", "Hello<|endoftext|>world", "<|endoftext|><|endoftext|>",
    " <|endoftext|> ", "a <|endoftext|>b", "<|endoftext", "endoftext|>", "<|endoftext|",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|>", "x<|im_start|>y", "<|im_start|>system\nYou are kind.<|im_end|>",
    "<repo_name>clora<file_sep>main.c", "<|endoftext|><|im_start|>", "<<|endoftext|>>",
    "<|im_end|>\n\n<|im_start|>", "text<|endoftext|>\n",
    # mixed scripts
    "Hello мир 世界 عالم", "Привет, как дела?", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया",
    "สวัสดีชาวโลก", "Γειά σου Κόσμε", "Xin chào thế giới", "ሰላም ዓለም", "ქართული ენა",
    "abcабвαβγ", "Ω≈ç√∫˜µ≤≥÷", "∑∏∫∂√∞≠≈", "→ ← ↑ ↓ ⇒", "© ® ™ § ¶ †", "€ £ ¥ ₹ ₿",
    "\x01\x02\x7f control", "tab\there", "bell\x07",
    # long
    "supercalifragilisticexpialidocious", "a" * 300, "ab" * 150, " " * 40, "\n" * 20,
    "ha" * 20 + "!" * 20, "1" * 64, "😀" * 30, "你" * 50,
    "Pneumonoultramicroscopicsilicovolcanoconiosis is a long word.",
]

PIECES = {
    "word": ["the", "of", "and", "tokenizer", "LoRA", "OpenCL", "Hello", "WORLD", "GPU", "naïve",
             "über", "straße", "東京", "데이터", "мир", "λόγος", "فارسی", "x", "ID", "foo_bar"],
    "number": ["0", "1", "42", "2024", "3.14", "1,234", "99999", "007", "1e10", "٣"],
    "punct": [".", ",", "!", "?", "...", ";", ":", "-", "--", "(", ")", "\"", "'", "#", "@",
              "&&", "->", "::", "/*", "*/", "{", "}", "<", ">", "=", "+", "%", "$", "`", "~"],
    "space": [" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\r\n", "\u00a0", "\u3000"],
    "contraction": ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'LL"],
    "emoji": ["😀", "🚀", "👩‍💻", "🇫🇷", "❤️", "👍🏻"],
    "special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    "mark": ["\u0301", "\u0308", "\u200d", "\u200b"],
}
WEIGHTS = {"word": 30, "number": 10, "punct": 14, "space": 22, "contraction": 6, "emoji": 4,
           "special": 3, "mark": 2}


def generated(count, seed=11):
    rng = random.Random(seed)
    kinds = list(WEIGHTS)
    weights = [WEIGHTS[k] for k in kinds]
    out = []
    while len(out) < count:
        n = rng.randint(1, 24)
        text = "".join(rng.choice(PIECES[k]) for k in rng.choices(kinds, weights, k=n))
        if text not in out:
            out.append(text)
    return out


def main():
    texts = []
    for t in HAND + generated(160):
        if t not in texts:
            texts.append(t)
    for t in texts:
        assert "\x00" not in t
        t.encode("utf-8")  # no lone surrogates
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpe_texts.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"texts": texts}, f, ensure_ascii=True, indent=0)
        f.write("\n")
    print(f"{len(texts)} texts -> {path}")


if __name__ == "__main__":
    main()
