"""LLaDAConfig: the published 8B config.json parses, the 8B parameter count, unsupported values fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from llada_checkpoints import LLADA_8B_CONFIG, small_official_config
from transformers import AutoConfig

from spg_lib.models import LLaDAConfig, LLaDAModelLM


def test_published_8b_config_json_parses(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLADA_8B_CONFIG))
    for cfg in (LLaDAConfig.from_pretrained(tmp_path), AutoConfig.from_pretrained(tmp_path)):
        assert type(cfg) is LLaDAConfig
        assert (cfg.d_model, cfg.n_heads, cfg.effective_n_kv_heads, cfg.n_layers) == (4096, 32, 32, 32)
        assert (cfg.mlp_hidden, cfg.vocab_size, cfg.padded_vocab_size, cfg.head_dim) == (12288, 126464, 126464, 128)
        assert (cfg.mask_token_id, cfg.eos_token_id, cfg.pad_token_id) == (126336, 126081, 126081)
        assert cfg.rope_theta == 500000.0 and cfg.rms_norm_eps == 1e-5 and cfg.weight_tying is False
        assert cfg.init_fn == "mitchell" and cfg.precision == "amp_bf16"  # irrelevant fields are kept
        assert not hasattr(cfg, "auto_map")


def test_8b_parameter_count_on_meta_device() -> None:
    cfg = LLaDAConfig(**{k: v for k, v in LLADA_8B_CONFIG.items() if k != "model_type"})
    with torch.device("meta"):
        model = LLaDAModelLM(cfg)
    n = sum(p.numel() for p in model.parameters())
    D, F, V, L = 4096, 12288, 126464, 32
    expected = 2 * V * D + L * (4 * D * D + 3 * D * F + 2 * D) + D  # wte + head, blocks, ln_f
    assert n == expected == 8_015_581_184
    assert model.get_output_embeddings().weight.shape == (V, D)


def test_defaults_are_the_8b_values_and_unknown_fields_are_stored() -> None:
    cfg = LLaDAConfig(some_future_field=[1, 2])
    assert cfg.some_future_field == [1, 2]
    for key, value in LLADA_8B_CONFIG.items():
        if key not in ("auto_map", "transformers_version", "model_type"):
            assert getattr(cfg, key) == value, key
    assert cfg.to_dict()["some_future_field"] == [1, 2]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"block_type": "sequential"}, "block_type"),
        ({"layer_norm_type": "default"}, "layer_norm_type"),
        ({"alibi": True}, "alibi"),
        ({"rope": False}, "rope"),
        ({"attention_layer_norm": True}, "attention_layer_norm"),
        ({"block_group_size": 2}, "block_group_size"),
        ({"activation_type": "swiglu"}, "activation_type"),
        ({"n_heads": 5}, "d_model"),
        ({"n_kv_heads": 3}, "n_kv_heads"),
        ({"n_kv_heads": 2, "multi_query_attention": True}, "multi_query_attention"),
        ({"embedding_size": 40}, "embedding_size"),
        ({"mask_token_id": 50}, "mask_token_id"),
        ({"eos_token_id": None}, "eos_token_id"),
        ({"d_model": 0}, "d_model"),
        ({"residual_dropout": 1.5}, "residual_dropout"),
    ],
)
def test_unsupported_or_inconsistent_values_raise(overrides: dict, message: str) -> None:
    cfg = small_official_config(**overrides)
    cfg.pop("model_type")
    with pytest.raises(ValueError, match=message):
        LLaDAConfig(**cfg)


def test_bad_config_json_fails_on_load(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(small_official_config(layer_norm_type="gemma_rms")))
    with pytest.raises(ValueError, match="layer_norm_type"):
        AutoConfig.from_pretrained(tmp_path)
