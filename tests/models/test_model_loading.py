"""load_model / load_tokenizer: builtin, save_pretrained round trips (single file, sharded, file://), errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from llada_checkpoints import random_official_state_dict, small_official_config, write_official_checkpoint
from tokenizers import Tokenizer, models
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from spg_lib.models import LLaDAModelLM, build_tiny_tokenizer, init_tiny_model, load_model, load_tokenizer


def _ids(model: LLaDAModelLM, T: int = 12) -> torch.Tensor:
    return torch.randint(0, model.config.vocab_size, (2, T), generator=torch.Generator().manual_seed(0))


def test_builtin_tiny() -> None:
    model = load_model("builtin:tiny")
    assert isinstance(model, LLaDAModelLM) and not model.training
    ids = _ids(model)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, init_tiny_model()(ids).logits)
    assert load_model("builtin:tiny", dtype="bfloat16").dtype == torch.bfloat16
    tok = load_tokenizer("builtin:tiny")
    assert tok.mask_token_id == model.config.mask_token_id


@pytest.mark.parametrize("shard", [None, "200KB"])
def test_save_pretrained_round_trip(tmp_path: Path, shard: str | None) -> None:
    model = init_tiny_model(seed=3)
    kwargs = {} if shard is None else {"max_shard_size": shard}
    model.save_pretrained(tmp_path / "m", **kwargs)
    build_tiny_tokenizer().save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors.index.json").is_file() == (shard is not None)
    for source in (str(tmp_path / "m"), f"file://{tmp_path / 'm'}"):
        loaded = load_model(source)
        assert isinstance(loaded, LLaDAModelLM) and not loaded.training
        ids = _ids(model)
        with torch.no_grad():
            torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)
    tok = load_tokenizer(str(tmp_path / "m"))
    assert tok.decode(tok.encode("x = 3\n")) == "x = 3\n" and tok.mask_token_id == model.config.mask_token_id


def test_dtype_and_device_arguments(tmp_path: Path) -> None:
    init_tiny_model().save_pretrained(tmp_path)
    model = load_model(str(tmp_path), dtype=torch.bfloat16, device="cpu")
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu"
    with pytest.raises(ValueError, match="dtype"):
        load_model(str(tmp_path), dtype="float99")


def test_official_dir_with_auto_map_loads_natively(tmp_path: Path) -> None:
    cfg = small_official_config()
    write_official_checkpoint(tmp_path, cfg, random_official_state_dict(cfg), n_shards=2)
    assert "auto_map" in json.loads((tmp_path / "config.json").read_text())
    for trust in (False, True):  # 'llada' is always native, even when remote code is allowed
        assert type(load_model(str(tmp_path), trust_remote_code=trust)) is LLaDAModelLM


def test_other_model_type_needs_trust_remote_code(tmp_path: Path) -> None:
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         vocab_size=30)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        load_model(str(tmp_path))
    model = load_model(str(tmp_path), trust_remote_code=True)
    assert type(model).__name__ == "BertModel" and not model.training


def test_missing_and_malformed_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(f"file://{tmp_path / 'nope'}")
    with pytest.raises(FileNotFoundError):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="line 1"):
        load_model(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        load_tokenizer("./definitely/missing")
    with pytest.raises(ValueError, match="fetch an s3:// checkpoint first"):
        load_model("s3://bucket/ckpt")
    for_localhost = tmp_path / "m"
    init_tiny_model().save_pretrained(for_localhost)
    assert isinstance(load_model(f"file://localhost{for_localhost}"), LLaDAModelLM)  # RFC 8089: an absolute path


def test_load_tokenizer_sets_mask_token_from_config(tmp_path: Path) -> None:
    vocab = {"<unk>": 0, "<|eot_id|>": 1, "<|mdm_mask|>": 2, "a": 3}
    raw = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", eos_token="<|eot_id|>").save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llada", "mask_token_id": 2}))
    tok = load_tokenizer(str(tmp_path))
    assert tok.mask_token == "<|mdm_mask|>" and tok.mask_token_id == 2
