"""Test helpers: official-style LLaDA `config.json` dicts and random checkpoints written in the published layout
(sharded safetensors + model.safetensors.index.json), independent of `spg_lib.models`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from official_llada_reference import RefLLaDAModelLM
from safetensors.torch import save_file

# The published GSAI-ML/LLaDA-8B-Instruct config.json, as described in docs/algorithms.md#model-and-tokens plus the
# remaining
# fields of the official ModelConfig (all present in the published file).
LLADA_8B_CONFIG: dict[str, Any] = {
    "activation_type": "silu",
    "alibi": False,
    "alibi_bias_max": 8.0,
    "architectures": ["LLaDAModelLM"],
    "attention_dropout": 0.0,
    "attention_layer_norm": False,
    "attention_layer_norm_with_affine": True,
    "auto_map": {
        "AutoConfig": "configuration_llada.LLaDAConfig",
        "AutoModel": "modeling_llada.LLaDAModelLM",
        "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
    },
    "bias_for_layer_norm": False,
    "block_group_size": 1,
    "block_type": "llama",
    "d_model": 4096,
    "embedding_dropout": 0.0,
    "embedding_size": 126464,
    "eos_token_id": 126081,
    "flash_attention": False,
    "include_bias": False,
    "include_qkv_bias": False,
    "init_cutoff_factor": None,
    "init_device": "meta",
    "init_fn": "mitchell",
    "init_std": 0.02,
    "input_emb_norm": False,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "mask_token_id": 126336,
    "max_sequence_length": 4096,
    "mlp_hidden_size": 12288,
    "mlp_ratio": 4,
    "model_type": "llada",
    "multi_query_attention": None,
    "n_heads": 32,
    "n_kv_heads": 32,
    "n_layers": 32,
    "pad_token_id": 126081,
    "precision": "amp_bf16",
    "residual_dropout": 0.0,
    "rms_norm_eps": 1e-05,
    "rope": True,
    "rope_full_precision": True,
    "rope_theta": 500000.0,
    "scale_logits": False,
    "transformers_version": "4.46.3",
    "use_cache": False,
    "vocab_size": 126464,
    "weight_tying": False,
}


def small_official_config(**overrides: Any) -> dict[str, Any]:
    """The 8B config.json shrunk to a few-thousand-parameter model (vocab 50, d_model 32, 2 blocks)."""
    cfg = dict(LLADA_8B_CONFIG)
    cfg.update(
        d_model=32, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=48, vocab_size=50, embedding_size=50,
        mask_token_id=49, eos_token_id=1, pad_token_id=1, max_sequence_length=64, rope_theta=10000.0,
    )
    cfg.update(overrides)
    return cfg


def random_official_state_dict(cfg: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights for the official module tree: N(0, 0.2) matrices, norm weights ~ 1 + N(0, 0.1), biases ~
    N(0, 0.1), so every parameter (norm weights included) visibly changes the logits."""
    generator = torch.Generator().manual_seed(seed)
    state = RefLLaDAModelLM(cfg).state_dict()
    out = {}
    for name in sorted(state):
        shape = state[name].shape
        noise = torch.randn(shape, generator=generator)
        if name.endswith("norm.weight") or name.endswith("ln_f.weight"):
            out[name] = 1.0 + 0.1 * noise
        elif name.endswith(".bias"):
            out[name] = 0.1 * noise
        else:
            out[name] = 0.2 * noise
    return out


def write_official_checkpoint(
    directory: Path, cfg: dict[str, Any], state: dict[str, torch.Tensor], n_shards: int = 2
) -> Path:
    """Write config.json + `model-0000k-of-0000n.safetensors` shards + model.safetensors.index.json."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(cfg, indent=2))
    names = sorted(state)
    weight_map: dict[str, str] = {}
    for k in range(n_shards):
        shard = f"model-{k + 1:05d}-of-{n_shards:05d}.safetensors"
        part = {n: state[n].contiguous() for n in names[k::n_shards]}
        save_file(part, str(directory / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return directory
