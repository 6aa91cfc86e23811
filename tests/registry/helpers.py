"""Shared helpers of the registry tests: a saved tiny model, evaluation metrics files, a logits fingerprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from spg_lib.models import build_tiny_tokenizer, init_tiny_model

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
    """A metrics.json as `spg evaluate` writes it (tiny protocol: 8 tokens, 8 steps, one block)."""
    metrics = {"task": "gsm8k", "mode": "fixed", "model": "runs/x/final", "data": "data/gsm8k/test.jsonl", "n": 4,
               "accuracy": accuracy, "mean_completion_tokens": 6.5, "median_completion_tokens": 6.0,
               "gen_length": 8, "steps": 8, "block_length": 8, "batch_size": 4, "wall_time_s": 0.5,
               "tokens_per_s": 64.0, "device": "cpu", **overrides}
    for key in drop:
        metrics.pop(key)
    path.write_text(json.dumps(metrics))
    return path


@torch.no_grad()
def logits(model) -> torch.Tensor:
    return model(PROBE).logits
