#!/usr/bin/env python3
"""Writes chat_reference.json: chat templates, conversations and the text
Jinja2 renders for them the way transformers' apply_chat_template does
(trim_blocks and lstrip_blocks on), for tests/test_bpe.c.

The templates: SmolLM2-135M-Instruct's, read out of
smollm2_tokenizer.gguf (make_bpe_golden.py); plain ChatML; Llama 3's (with
and without the add_generation_prompt test); layouts of them over several
lines with whitespace control, checked here to render the same; and
templates clora must refuse (one that renders an extra space, Llama 3.1's
opening, Mistral's).

    /work/venv/bin/python tests/golden/make_chat_golden.py
"""
import json
import os

import gguf
import jinja2

HERE = os.path.dirname(os.path.abspath(__file__))

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")

LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] "
          "| trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content "
          "%}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
          "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

LLAMA3_ALWAYS = LLAMA3.replace("{% if add_generation_prompt %}", "").replace(
    "}}{% endif %}", "}}")

SMOLLM2_LAYOUT = """{#- SmolLM2's template over several lines -#}
{% for message in messages %}
  {% if loop.first and messages[0]["role"] != "system" %}
    {{- "<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n" }}
  {%- endif %}
  {{- "<|im_start|>" + message["role"] + "\\n" + message["content"] + "<|im_end|>" + "\\n" }}
{%- endfor %}
{% if add_generation_prompt %}
  {{- "<|im_start|>assistant\\n" }}
{%- endif %}
"""

LLAMA3_LAYOUT = """{% set loop_messages = messages %}
{% for message in loop_messages %}
    {% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}
    {% if loop.index0 == 0 %}
        {% set content = bos_token + content %}
    {% endif %}
    {{- content -}}
{% endfor %}
{% if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
{% endif %}"""

REFUSED = {
    "extra space": CHATML.replace("{% endfor %}", " {% endfor %}"),
    "Llama 3.1 opening": ("{{- bos_token }}{%- if messages[0]['role'] == 'system' %}"
                          "{%- set system_message = messages[0]['content']|trim %}"
                          "{%- set messages = messages[1:] %}{%- else %}"
                          "{%- set system_message = \"\" %}{%- endif %}"
                          "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}"
                          "{{- \"Cutting Knowledge Date: December 2023\\n\" }}"),
    "Mistral": ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}"
                "{{ message['content'] + eos_token }}{% endif %}{% endfor %}"),
    "unclosed tag": "{% for message in messages %}{{ message['content'] ",
}

CONVERSATIONS = [
    [],
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "And 3+3?"}],
    [{"role": "user", "content": "  padded with spaces and a newline\n"}],
    [{"role": "user", "content": "\u3000\u00a0unicode spaces\u2003"}],
    [{"role": "user", "content": "\x1c\x1d separators \x1f"}],
    [{"role": "user", "content": ""}],
    [{"role": "tool", "content": "{\"result\": 42}"}],
    [{"role": "user", "content": "tokens <|im_start|> and <|eot_id|> in text\n\nline two"}],
    [{"role": "assistant", "content": "I start."}, {"role": "system", "content": "late system"}],
    [{"role": "user", "content": "多语言 — ünïcödé 😀"}],
]


def render(template, messages, add_generation_prompt, bos_token):
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True,
                             extensions=["jinja2.ext.loopcontrols"])
    return env.from_string(template).render(messages=messages,
                                            add_generation_prompt=add_generation_prompt,
                                            bos_token=bos_token, eos_token="<|im_end|>")


def cases(template, bos_token):
    out = []
    for messages in CONVERSATIONS:
        for prompt in (False, True):
            out.append({"messages": messages, "add_generation_prompt": prompt,
                        "text": render(template, messages, prompt, bos_token)})
    return out


def main():
    reader = gguf.GGUFReader(os.path.join(HERE, "smollm2_tokenizer.gguf"))
    f = reader.fields["tokenizer.chat_template"]
    smollm2 = bytes(f.parts[f.data[0]]).decode("utf-8")
    bos = "<|begin_of_text|>"
    supported = [
        ("SmolLM2-135M-Instruct", smollm2, "chatml", None),
        ("SmolLM2 over several lines", SMOLLM2_LAYOUT, "chatml", None),
        ("ChatML", CHATML, "chatml", None),
        ("Qwen2-style default system", smollm2.replace(
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
            "You are a helpful assistant."), "chatml", None),
        ("Llama 3", LLAMA3, "llama3", bos),
        ("Llama 3 over several lines", LLAMA3_LAYOUT, "llama3", bos),
        ("Llama 3 always prompting", LLAMA3_ALWAYS, "llama3", bos),
    ]
    templates = []
    for name, template, fmt, bos_token in supported:
        c = cases(template, bos_token or "<|endoftext|>")
        templates.append({"name": name, "template": template, "format": fmt,
                          "bos_token": bos_token, "cases": c})
    # the layouts render what the one-line templates do
    for a, b in ((0, 1), (4, 5)):
        assert [x["text"] for x in templates[a]["cases"]] == \
               [x["text"] for x in templates[b]["cases"]], templates[b]["name"]
    for name, template in REFUSED.items():
        templates.append({"name": name, "template": template, "format": None})
    with open(os.path.join(HERE, "chat_reference.json"), "w", encoding="utf-8") as f:
        json.dump({"renderer": f"jinja2 {jinja2.__version__}, trim_blocks and lstrip_blocks",
                   "templates": templates}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(templates)} templates -> chat_reference.json")


if __name__ == "__main__":
    main()
