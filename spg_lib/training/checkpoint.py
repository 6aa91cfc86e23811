"""Atomic training checkpoints: weights (full or adapter), optimizer, scheduler, RNG states, data position.

Layout of ``<out>/checkpoints/step-<N>/``::

    model.safetensors      trainable weights (the LoRA adapter, or every parameter for full fine-tuning)
    state.pt               optimizer (unsharded runs), scheduler, RNG states of every process, counters,
                           the rollout buffer (torch.save)
    accelerate/            FSDP / DeepSpeed runs only: ``Accelerator.save_state`` (sharded model and optimizer)
    meta.json              step, config, written last

A checkpoint is written into ``step-<N>.tmp`` and renamed into place only when complete, so a run killed
mid-write (SIGKILL included) never leaves a directory that looks finished; ``latest_checkpoint`` ignores
``.tmp`` leftovers, and the next save of that step removes them.

Writing takes three steps (``begin_checkpoint`` on the main process, collective writes of every process into
the staging directory, ``commit_checkpoint`` on the main process) so that sharded state can be written by every
rank.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from spg_lib.io import atomic_write_json, read_json, replace_dir

_STEP_DIR = re.compile(r"^step-(\d+)$")


def staging_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"step-{step}.tmp"


def begin_checkpoint(root: str | Path, step: int) -> Path:
    """Create an empty staging directory ``step-<N>.tmp`` under ``root`` (main process only)."""
    tmp = staging_dir(root, step)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def commit_checkpoint(tmp: str | Path, weights: dict[str, torch.Tensor], state: dict[str, Any],
                      meta: dict[str, Any], keep_last: int | None = 2) -> Path:
    """Write weights, state and (last) meta into the staging dir, rename it into place, prune old ones."""
    tmp = Path(tmp)
    root, name = tmp.parent, tmp.name.removesuffix(".tmp")
    m = _STEP_DIR.match(name)
    if not m:
        raise ValueError(f"{tmp}: not a checkpoint staging directory (step-<N>.tmp)")
    save_file({n: t.detach().contiguous().cpu() for n, t in weights.items()}, str(tmp / "model.safetensors"))
    torch.save(state, tmp / "state.pt")
    atomic_write_json(tmp / "meta.json", {"step": int(m.group(1)), **meta}, default=str)
    final = replace_dir(tmp, root / name)
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


def load_weights(path: str | Path, model: torch.nn.Module | None) -> None:
    """Copy the checkpoint's trainable weights into ``model`` (None: skip).

    Raises:
        ValueError: the checkpoint's parameter names do not match the model's trainable parameters.
    """
    if model is None:
        return
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


def load_checkpoint(path: str | Path, model: torch.nn.Module | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load trainable weights into ``model`` (None: weights untouched) and return (state, meta).

    Raises:
        ValueError: the checkpoint's parameter names do not match the model's trainable parameters.
    """
    path = Path(path)
    load_weights(path, model)
    state = torch.load(path / "state.pt", weights_only=False)
    meta = read_json(path / "meta.json", what="checkpoint meta")
    return state, meta


# ---------------------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Any]:
    """This process's global RNG states: torch CPU, every CUDA device, Python ``random`` and NumPy.

    The trainer draws nothing from them (its generators are seeded explicitly); dropout (LoRA, attention) does.
    """
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover - numpy ships with torch
        pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured (CUDA states only where the same devices are present)."""
    torch.set_rng_state(state["torch"])
    if "python" in state:
        random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
