"""Tiny model and character tokenizer: determinism, size, special ids, round trips, chat template."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from spg_lib.models import LLaDAModelLM, build_tiny_tokenizer, init_tiny_model, tiny_config

TEXT = "Question: 12 + 30 = ?\nAnswer: <answer>42</answer> {x_1^2} ~|`"


def test_tiny_model_size_ids_and_determinism() -> None:
    state = torch.random.get_rng_state()
    a, b, c = init_tiny_model(seed=0), init_tiny_model(seed=0), init_tiny_model(seed=1)
    assert torch.equal(state, torch.random.get_rng_state())  # no global seeding / global RNG use
    assert isinstance(a, LLaDAModelLM) and not a.training
    n = sum(p.numel() for p in a.parameters())
    assert 1_000_000 <= n <= 5_000_000
    tok = build_tiny_tokenizer()
    cfg = a.config
    assert cfg.vocab_size == len(tok)
    assert (cfg.mask_token_id, cfg.eos_token_id, cfg.pad_token_id) == (
        tok.mask_token_id, tok.eos_token_id, tok.pad_token_id)
    ids = torch.tensor([tok.encode(TEXT)])
    with torch.no_grad():
        la, lb, lc = a(ids).logits, b(ids).logits, c(ids).logits
    assert la.shape == (1, ids.shape[1], len(tok))
    assert torch.equal(la, lb) and not torch.allclose(la, lc)


def test_tiny_config_vocab_override_and_error() -> None:
    assert tiny_config(200).vocab_size == 200
    assert init_tiny_model(vocab_size=64).get_output_embeddings().weight.shape[0] == 64
    with pytest.raises(ValueError, match="vocab_size"):
        tiny_config(3)


def test_tokenizer_special_tokens_and_text_round_trip() -> None:
    tok = build_tiny_tokenizer()
    assert tok.convert_ids_to_tokens(tok.mask_token_id) == "<|mdm_mask|>"
    assert tok.convert_ids_to_tokens(tok.eos_token_id) == "<|eot_id|>"
    assert tok.convert_ids_to_tokens(tok.pad_token_id) == "<|endoftext|>"
    assert len({tok.mask_token_id, tok.eos_token_id, tok.pad_token_id, tok.bos_token_id, tok.unk_token_id}) == 5
    ids = tok.encode(TEXT)
    assert len(ids) == len(TEXT)  # one token per character, no BOS added
    assert tok.decode(ids) == TEXT
    with_specials = tok.encode("ab<|eot_id|><|endoftext|>")
    assert with_specials[2:] == [tok.eos_token_id, tok.pad_token_id]
    assert tok.decode(with_specials, skip_special_tokens=True) == "ab"
    assert tok.encode("é") == [tok.unk_token_id]
    batch = tok(["ab", "abcd"], padding=True)
    assert batch["attention_mask"][0] == [0, 0, 1, 1] and batch["input_ids"][0][:2] == [tok.pad_token_id] * 2


def test_chat_template() -> None:
    tok = build_tiny_tokenizer()
    messages = [{"role": "user", "content": "What is 2+2? "}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    no_prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert no_prompt.endswith("<|eot_id|>")
    ids = tok.encode(text)
    assert ids[0] == tok.bos_token_id and tok.decode(ids) == text


def test_tokenizer_save_and_reload(tmp_path: Path) -> None:
    tok = build_tiny_tokenizer()
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.encode(TEXT) == tok.encode(TEXT) and again.decode(tok.encode(TEXT)) == TEXT
    assert (again.mask_token_id, again.eos_token_id, again.pad_token_id) == (
        tok.mask_token_id, tok.eos_token_id, tok.pad_token_id)
    assert again.padding_side == "left"
    messages = [{"role": "user", "content": "hi"}]
    assert again.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True)
