"""The tiny models of the compatibility suite (tests/compat/run.py), made
by transformers from configs with a fixed seed and saved as transformers
saves them (safetensors), and the tiny Llama converted to a GGUF file.

Every kind has its class, how to load a saved folder of it, and its
reference output for one sequence of ids, which is what `clora logits`
writes for that kind of folder:
    gpt2         GPT2LMHeadModel (tied head)             (T, vocab) logits
    llama        LlamaForCausalLM (GQA, untied head)     (T, vocab) logits
    bert_mean    BertModel without pooler, clora's head:
                 masked mean of the last hidden states,
                 then a Linear "classifier"               (1, classes) logits
    bert_pooler  BertModel with its pooler                (1, hidden) pooler output
                 (when the adapter adapts the pooler; else the mean)
    bert_cls     BertForSequenceClassification            (1, classes) logits
"""
import os

import numpy as np
import torch
from transformers import (BertConfig, BertForSequenceClassification, BertModel, GPT2Config,
                          GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM)

VOCAB = 64
CLASSES = 3


class BertMeanClassifier(BertModel):
    """BertModel -> masked mean over tokens -> Linear classifier (clora's head)."""

    def __init__(self, config):
        super().__init__(config, add_pooling_layer=False)
        self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        h = super().forward(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.classifier((h * m).sum(1) / m.sum(1))


def _bert_config():
    return BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=64, max_position_embeddings=32,
                      type_vocab_size=2, num_labels=CLASSES)


def _build(kind):
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2,
                                          n_head=4))
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False))
    if kind == "bert_mean":
        return BertModel(_bert_config(), add_pooling_layer=False)
    if kind == "bert_pooler":
        return BertModel(_bert_config())
    if kind == "bert_cls":
        return BertForSequenceClassification(_bert_config())
    raise ValueError(kind)


CLASS = {"gpt2": GPT2LMHeadModel, "llama": LlamaForCausalLM, "bert_mean": BertMeanClassifier,
         "bert_pooler": BertModel, "bert_cls": BertForSequenceClassification}
KINDS = tuple(CLASS)


def spread(model):
    """Redraws every weight so that each one shows in the output: matrices
    N(0, 0.15^2), norm weights around 1, other vectors N(0, 0.1^2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name.lower()) and name.endswith("weight"):
                p.uniform_(0.6, 1.4)
            elif p.dim() == 1:
                p.normal_(0.0, 0.1)
            else:
                p.normal_(0.0, 0.15)


def save_all(root, seed=1):
    """Writes every kind's folder under root; returns {kind: folder}."""
    folders = {}
    for i, kind in enumerate(KINDS):
        torch.manual_seed(seed * 100 + i)
        model = _build(kind)
        spread(model)
        folder = os.path.join(root, kind)
        model.save_pretrained(folder, safe_serialization=True)
        folders[kind] = folder
    return folders


def load(kind, folder):
    """The saved model of `kind`, in eval mode, with nothing missing."""
    kwargs = {"num_labels": CLASSES} if kind in ("bert_mean", "bert_cls") else {}
    model, info = CLASS[kind].from_pretrained(folder, output_loading_info=True, **kwargs)
    missing = [k for k in info["missing_keys"] if not (kind == "bert_mean" and "classifier" in k)]
    # a real BertModel checkpoint has its pooler, which bert_mean leaves out
    unexpected = [k for k in info["unexpected_keys"]
                  if not (kind == "bert_mean" and k.startswith("pooler."))]
    if missing or unexpected:
        raise RuntimeError("%s: transformers finds keys missing %s, unexpected %s"
                           % (folder, missing, unexpected))
    return model.eval()


def output(kind, model, ids, pooler=True):
    """The reference output of `model` (a transformers or PEFT model of
    `kind`) for ids (1, T), as `clora logits` writes it for that kind. A
    bert_pooler model gives its pooler output, or without `pooler` the mean
    of its last hidden states (clora's output for a BertModel folder whose
    adapter does not adapt the pooler)."""
    mask = torch.ones_like(ids)
    with torch.no_grad():
        if kind == "bert_pooler" and not pooler:
            return model(input_ids=ids, attention_mask=mask).last_hidden_state.mean(1)
        if kind in ("gpt2", "llama"):
            return model(input_ids=ids).logits[0]
        if kind == "bert_mean":
            return model(input_ids=ids, attention_mask=mask)
        if kind == "bert_pooler":
            return model(input_ids=ids, attention_mask=mask).pooler_output
        return model(input_ids=ids, attention_mask=mask).logits


GGUF_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def _gguf_name(hf):
    top = {"model.embed_tokens.weight": "token_embd.weight",
           "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    _, _, layer, rest = hf.split(".", 3)
    return "blk.%s.%s" % (layer, GGUF_NAMES[rest])


def _rotary_rows(w, heads):
    """llama.cpp's converter order of Q and K rows: Hugging Face's row
    s*D/2 + i of a head goes to row 2i + s."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(
        w.shape)


def llama_to_gguf(folder, path):
    """The Llama folder's weights as a GGUF file in F32, laid out as
    llama.cpp's converter writes them. Needs the gguf package."""
    from gguf import GGUFWriter
    model = load("llama", folder)
    config = model.config
    w = GGUFWriter(path, "llama")
    w.add_block_count(config.num_hidden_layers)
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(config.num_attention_heads)
    w.add_head_count_kv(config.num_key_value_heads)
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    w.add_rope_freq_base(config.rope_theta)
    w.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    for name, value in model.state_dict().items():
        if "rotary_emb" in name:
            continue
        value = value.numpy().astype(np.float32)
        if ".q_proj." in name:
            value = _rotary_rows(value, config.num_attention_heads)
        elif ".k_proj." in name:
            value = _rotary_rows(value, config.num_key_value_heads)
        w.add_tensor(_gguf_name(name), np.ascontiguousarray(value))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
