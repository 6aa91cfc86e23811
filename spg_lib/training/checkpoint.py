"""Atomic training checkpoints: weights (full or adapter), optimizer, scheduler, RNG states, data position.

Layout of ``<out>/checkpoints/step-<N>/``::

    model.safetensors      trainable weights (the LoRA adapter, or every parameter for full fine-tuning)
    state.pt               optimizer, scheduler, generators, counters (torch.save)
    meta.json              step, config hash, written last

A checkpoint is written into ``step-<N>.tmp`` and renamed into place only when complete, so a run killed
mid-write (SIGKILL included) never leaves a directory that looks finished; ``latest_checkpoint`` ignores
``.tmp`` leftovers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

_STEP_DIR = re.compile(r"^step-(\d+)$")


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters with requires_grad (the adapter under LoRA), detached, contiguous, on CPU."""
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(root: str | Path, step: int, model: torch.nn.Module, state: dict[str, Any],
                    meta: dict[str, Any], keep_last: int | None = 2) -> Path:
    """Write checkpoint ``step`` atomically under ``root`` and prune older ones beyond ``keep_last``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f"step-{step}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(trainable_state_dict(model), str(tmp / "model.safetensors"))
    torch.save(state, tmp / "state.pt")
    with open(tmp / "meta.json", "w") as fh:
        json.dump({"step": step, **meta}, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    if keep_last is not None:
        steps = sorted(_list_steps(root))
        for old in steps[:-keep_last]:
            shutil.rmtree(root / f"step-{old}", ignore_errors=True)
    return final


def _list_steps(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    out = []
    for child in root.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and (child / "meta.json").is_file():
            out.append(int(m.group(1)))
    return out


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint directory under ``root``, or None."""
    steps = _list_steps(Path(root))
    return Path(root) / f"step-{max(steps)}" if steps else None


def load_checkpoint(path: str | Path, model: torch.nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load trainable weights into ``model`` and return (state, meta).

    Raises:
        ValueError: the checkpoint's parameter names do not match the model's trainable parameters.
    """
    path = Path(path)
    weights = load_file(str(path / "model.safetensors"))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    unexpected = [n for n in weights if n not in params]
    if missing or unexpected:
        raise ValueError(f"{path}: checkpoint does not match the model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    state = torch.load(path / "state.pt", weights_only=False)
    meta = json.loads((path / "meta.json").read_text())
    return state, meta
