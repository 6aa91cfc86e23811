"""The pipeline's Kubeflow components: thin typed bodies around `spg_lib.pipeline.stages`.

Five components (prepare dataset, base checkpoint, SPG training, evaluation, registration) and three glue steps
(resolve the configuration, report + gate, the exit handler). Each is a lightweight Python component whose
``base_image`` is the project image, fixed when the pipeline is compiled (``build(image, cpu_image)``), and which
never installs anything at run time (``install_kfp_package=False``): the same code runs in the image on a
cluster and, in tests, under ``kfp.local.SubprocessRunner(use_venv=False)`` in the project's environment.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kfp import dsl

from components.base_checkpoint import base_checkpoint
from components.evaluate_model import evaluate_model
from components.finalize_run import finalize_run
from components.prepare_dataset import prepare_dataset
from components.register_model import register_model
from components.report import report
from components.resolve_config import resolve_config
from components.train_spg import train_spg

__all__ = ["Components", "build"]

GPU_STEPS = ("train_spg", "evaluate_model")
CPU_STEPS = ("resolve_config", "prepare_dataset", "base_checkpoint", "report", "register_model", "finalize_run")


@dataclasses.dataclass(frozen=True)
class Components:
    """The compiled-in components of one pipeline build (KFP component factories)."""

    resolve_config: Any
    prepare_dataset: Any
    base_checkpoint: Any
    train_spg: Any
    evaluate_model: Any
    report: Any
    register_model: Any
    finalize_run: Any


def build(image: str, cpu_image: str) -> Components:
    """The components with their images: ``image`` (CUDA) for training and evaluation, ``cpu_image`` else."""
    bodies = {"resolve_config": resolve_config, "prepare_dataset": prepare_dataset,
              "base_checkpoint": base_checkpoint, "train_spg": train_spg, "evaluate_model": evaluate_model,
              "report": report, "register_model": register_model, "finalize_run": finalize_run}
    made = {name: dsl.component(fn, base_image=image if name in GPU_STEPS else cpu_image, install_kfp_package=False)
            for name, fn in bodies.items()}
    return Components(**made)
