"""Shared helpers of the registry tests: a saved tiny model, evaluation metrics files, a logits fingerprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from spg_lib.models import build_tiny_tokenizer, init_tiny_model
from spg_lib.tasks.metrics import PROTOCOL_KEYS, EvalMetrics, EvalProtocol

# the tiny protocol: 8 tokens, 8 steps, one block, greedy, paper prompts, on 4 test examples
PROTOCOL = EvalProtocol(task="gsm8k", data_hash="5e" * 32, n=4, prompt_style="paper", mode="fixed", gen_length=8,
                        block_length=8, steps=8, temperature=0.0, remasking="low_confidence",
                        redecode_earlier_masks=False)
PROBE = torch.tensor([[7, 40, 41, 42, 9, 60, 61, 6, 6, 6], [8, 50, 51, 52, 53, 54, 6, 6, 6, 6]])


def save_tiny(out: Path, seed: int = 0) -> Path:
    """A tiny LLaDA checkpoint in the layout `save_model_dir` writes (weights + tokenizer + spg_run.json)."""
    torch.manual_seed(seed)
    model = init_tiny_model()
    if seed:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(out)
    build_tiny_tokenizer().save_pretrained(out)
    (out / "spg_run.json").write_text(json.dumps({"train": {"seed": seed}}))
    return out


def write_metrics(path: Path, accuracy: Any = 50.0, drop: tuple[str, ...] = (), **overrides: Any) -> Path:
    """A metrics.json as `spg evaluate` writes it (`PROTOCOL`); `overrides` replace fields as written (protocol
    fields included, so a bad value reaches the file), `drop` removes fields."""
    good = EvalMetrics(protocol=PROTOCOL, accuracy=50.0, exact_match=50.0, mean_completion_tokens=6.5,
                       median_completion_tokens=6.0, batch_size=4, wall_time_s=0.5, tokens_per_s=64.0, device="cpu",
                       model="runs/x/final", data="data/gsm8k/test.jsonl")
    metrics = {**good.as_dict(), "accuracy": accuracy, **overrides}
    assert set(overrides) <= set(metrics) | set(PROTOCOL_KEYS), overrides
    for key in drop:
        metrics.pop(key)
    path.write_text(json.dumps(metrics))
    return path


@torch.no_grad()
def logits(model) -> torch.Tensor:
    return model(PROBE).logits
