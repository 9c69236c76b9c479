"""Hugging Face Llama and Mistral checkpoints into ``llama.py``'s model: the config
(``config_from_hf``, which refuses what the model does not implement) and the weights, renamed
(``our_name``, ``hf_state_dict``); both sides use ``nn.Linear``, so nothing is transposed.
Notes: ``phase_09_modern/notes/10_llama.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from phase_09_modern.models.llama import LlamaConfig


def config_from_hf(hf: dict) -> dict:
    """A Hugging Face Llama or Mistral ``config.json`` (as a dict) -> ``LlamaConfig`` fields.
    Anything this model does not implement (another activation, RoPE scaling) is an error."""
    kind = hf.get("model_type")
    if kind not in ("llama", "mistral"):
        raise ValueError(f"model_type {kind!r} is not supported; expected 'llama' or 'mistral'")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {hf['hidden_act']!r} is not supported; SwiGLU uses 'silu'")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"RoPE scaling {rope!r} is not supported; only the default RoPE")
    theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
    return {
        "vocab_size": hf["vocab_size"], "block_size": hf["max_position_embeddings"],
        "n_layer": hf["num_hidden_layers"], "n_head": hf["num_attention_heads"],
        "n_kv_head": hf.get("num_key_value_heads") or hf["num_attention_heads"],
        "n_embd": hf["hidden_size"], "d_ff": hf["intermediate_size"],
        "head_dim": hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"],
        "rope_theta": float(theta), "norm_eps": hf.get("rms_norm_eps", 1e-6),
        "sliding_window": hf.get("sliding_window") if kind == "mistral" else None,
        "tie_weights": bool(hf.get("tie_word_embeddings", False)),
        "bias": bool(hf.get("attention_bias", False)), "mlp_bias": bool(hf.get("mlp_bias", False)),
        "dropout": 0.0,
    }


HF_NAMES = (  # Hugging Face prefix or suffix -> this model's
    ("model.embed_tokens.", "transformer.wte."),
    ("model.norm.", "transformer.ln_f."),
    ("model.layers.", "transformer.h."),
    (".self_attn.", ".attn."),
    (".input_layernorm.", ".ln_1."),
    (".post_attention_layernorm.", ".ln_2."),
)


def our_name(hf_name: str) -> str:
    """``model.layers.0.self_attn.q_proj.weight`` -> ``transformer.h.0.attn.q_proj.weight``."""
    for old, new in HF_NAMES:
        hf_name = hf_name.replace(old, new)
    return hf_name


def hf_state_dict(hf_state: dict[str, torch.Tensor], config: LlamaConfig
                  ) -> dict[str, torch.Tensor]:
    """Rename a Hugging Face Llama/Mistral state dict (``our_name``); ``nn.Linear`` on both
    sides, so no transposes. Hugging Face's q and k weights are already in the rotate-half
    layout this model's RoPE uses. A tied checkpoint without ``lm_head.weight`` gets wte's."""
    state = {our_name(name): tensor for name, tensor in hf_state.items()
             if not name.endswith("rotary_emb.inv_freq")}
    if "lm_head.weight" not in state or config.tie_weights:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    return state

