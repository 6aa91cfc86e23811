"""The starting checkpoint of RL: fetched from a URI, or bootstrapped by masked-diffusion SFT.

    base_model:            # params.yaml
      uri: null            # hf://org/name[@rev] | s3://bucket/prefix | file:///path | builtin:tiny; null → SFT
      out_dir: runs/base
    sft: {...}             # used only when uri is null (see SFTRunConfig)

Writes ``{out_dir}/model`` (a loadable checkpoint) and ``{out_dir}/result.json`` (source, wall time).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

from spg_lib.io import atomic_write_json
from spg_lib.training.run import SFTRunConfig, run_sft

__all__ = ["BaseModelConfig", "make_base_model"]


@dataclasses.dataclass(frozen=True)
class BaseModelConfig:
    """Where the RL starting point comes from."""

    uri: str | None = dataclasses.field(default=None, metadata={
        "help": "checkpoint URI (hf://, s3://, file://, builtin:tiny); None: SFT bootstrap with the `sft` section"})
    out_dir: str = dataclasses.field(default="runs/base", metadata={"help": "writes model/ and result.json"})


def make_base_model(cfg: BaseModelConfig, sft: SFTRunConfig | None = None, log=print) -> dict[str, Any]:
    """Fetch ``cfg.uri`` or run the SFT bootstrap; returns (and writes) the result record."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if cfg.uri:
        from spg_lib.models.loading import load_model, save_model_dir
        from spg_lib.storage.fetch import fetch_checkpoint

        model_dir = fetch_checkpoint(cfg.uri, out / "model", load_check=load_model, write_builtin=save_model_dir)
        result: dict[str, Any] = {"source": "fetch", "uri": cfg.uri}
    else:
        if sft is None:
            raise ValueError("base_model.uri is null, so the `sft` section is needed to bootstrap a checkpoint")
        res = run_sft(dataclasses.replace(sft, out_dir=str(out)), log=log)
        model_dir = Path(res["model_dir"])
        result = {"source": "sft", "sft": dataclasses.asdict(sft), "final_loss": res["history"][-1]["loss"]}
    if model_dir.resolve() != (out / "model").resolve():  # keep one fixed output path for DVC
        shutil.rmtree(out / "model", ignore_errors=True)
        shutil.move(str(model_dir), out / "model")
    result.update({"model_dir": str(out / "model"), "wall_time_s": time.perf_counter() - start})
    atomic_write_json(out / "result.json", result)
    return result
