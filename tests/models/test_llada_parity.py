"""Logit parity between `spg_lib.models.LLaDAModelLM` and an independent re-implementation of the official LLaDA
remote code, both loading the SAME official-layout checkpoint (config.json with auto_map + sharded safetensors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from llada_checkpoints import random_official_state_dict, small_official_config, write_official_checkpoint
from official_llada_reference import RefLLaDAModelLM
from safetensors.torch import load_file
from transformers import AutoModel

from spg_lib.models import LLaDAModelLM, load_model

CASES = {
    "mha": {},
    "gqa": {"n_kv_heads": 2},
    "mqa": {"n_kv_heads": None, "multi_query_attention": True},
    "biases": {"include_bias": True, "bias_for_layer_norm": True, "n_kv_heads": 2},
    "qkv_bias+padded_vocab+scaled": {"include_qkv_bias": True, "embedding_size": 64, "scale_logits": True,
                                     "input_emb_norm": True},
}


def _ids(cfg: dict, B: int = 3, T: int = 11, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, cfg["vocab_size"], (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("case", sorted(CASES))
def test_logits_match_official_reference(tmp_path: Path, case: str) -> None:
    cfg = small_official_config(**CASES[case])
    write_official_checkpoint(tmp_path / "ckpt", cfg, random_official_state_dict(cfg, seed=3), n_shards=2)
    ids = _ids(cfg)
    with torch.no_grad():
        expected = RefLLaDAModelLM.from_directory(tmp_path / "ckpt")(ids)  # [B, T, E]
        model = load_model(str(tmp_path / "ckpt"))
        got = model(ids).logits
    assert isinstance(model, LLaDAModelLM)
    assert got.shape == expected.shape == (*ids.shape, cfg["embedding_size"])
    assert expected.std() > 0.05  # the random weights give non-trivial logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_auto_model_loads_official_dir_natively_and_completely(tmp_path: Path) -> None:
    cfg = small_official_config(n_kv_heads=2)
    state = random_official_state_dict(cfg, seed=4)
    write_official_checkpoint(tmp_path / "ckpt", cfg, state, n_shards=3)
    # The official config carries auto_map but no .py files: loading must not try remote code.
    model, info = AutoModel.from_pretrained(str(tmp_path / "ckpt"), output_loading_info=True)
    assert type(model) is LLaDAModelLM
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for name, tensor in state.items():
        torch.testing.assert_close(loaded[name], tensor, atol=0, rtol=0)
    ids = _ids(cfg, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(
            model.eval()(ids).logits, RefLLaDAModelLM.from_directory(tmp_path / "ckpt")(ids), atol=1e-5, rtol=1e-5
        )


def test_save_pretrained_writes_official_layout_readable_by_reference(tmp_path: Path) -> None:
    cfg = small_official_config(n_kv_heads=2)
    write_official_checkpoint(tmp_path / "ckpt", cfg, random_official_state_dict(cfg, seed=6))
    model = load_model(str(tmp_path / "ckpt"))
    model.save_pretrained(tmp_path / "saved")
    saved_cfg = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved_cfg["model_type"] == "llada" and saved_cfg["architectures"] == ["LLaDAModelLM"]
    assert "auto_map" not in saved_cfg
    for key, value in cfg.items():  # every official field is written back with its value
        if key not in ("auto_map", "transformers_version"):
            assert saved_cfg[key] == value, key
    names = set(load_file(str(tmp_path / "saved" / "model.safetensors")))
    assert "model.transformer.blocks.1.up_proj.weight" in names and "model.transformer.ff_out.weight" in names
    ids = _ids(cfg, seed=7)
    with torch.no_grad():
        torch.testing.assert_close(
            model(ids).logits, RefLLaDAModelLM.from_directory(tmp_path / "saved")(ids), atol=1e-5, rtol=1e-5
        )
