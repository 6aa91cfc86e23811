"""Model registry: log a trained model + its evaluation to MLflow, register a version, manage champion/candidate.

Modules:
  register  `register_model` (validate -> log pyfunc model + card + lineage -> register -> aliases),
            `read_eval_metrics`, `inspect_model_dir`, `champion_decision`, `download_model`, `RegistryInputError`
  store     `get_or_create_experiment`, `using_tracking_uri` (MLflow helpers the training logger shares)
  pyfunc    `SPGDiffusionModel` (the MLflow pyfunc wrapper: load checkpoint or LoRA adapter + base, generate)
  lineage   git commit, dvc.lock hashes, flattened params.yaml, MLflow-safe keys (no MLflow import)

CLI: ``spg register --model DIR --metrics FILE --name NAME`` (spg_lib/cli/register.py).
Importing this package is cheap: MLflow is imported only when registering / loading.

Test: ``python -m pytest -q tests/registry``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CANDIDATE", "CHAMPION", "Registration", "RegistryInputError", "download_model", "read_eval_metrics",
           "register_model"]


def __getattr__(name: str) -> Any:  # lazy: keep `import spg_lib.registry.lineage` free of mlflow/torch imports
    if name in __all__:
        from spg_lib.registry import register

        return getattr(register, name)
    raise AttributeError(f"module 'spg_lib.registry' has no attribute {name!r}")
