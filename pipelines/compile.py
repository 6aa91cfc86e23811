"""Compile the SPG pipeline into KFP IR YAML.

    python -m pipelines.compile                        # every shipped configuration -> pipelines/compiled/
    python -m pipelines.compile --check                # exit 1 when a committed YAML is stale
    spg kfp compile --config configs/paper/gsm8k.yaml -o kfp.gpus=8 --out /tmp/spg-gsm8k.yaml

Shipped configurations: params.yaml (the embedded CPU default) and configs/paper/*.yaml, compiled with their
repository-relative path as the ``config_file`` default (the same path inside the image's working directory).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from spg_lib.io import atomic_write
from spg_lib.pipeline.config import load_pipeline_config

ROOT = Path(__file__).resolve().parents[1]
COMPILED = ROOT / "pipelines" / "compiled"


def shipped_configs() -> dict[str, str]:
    """compiled file name -> configuration path relative to the repository root."""
    out = {"default.yaml": "params.yaml"}
    for path in sorted((ROOT / "configs" / "paper").glob("*.yaml")):
        out[f"paper-{path.stem}.yaml"] = path.relative_to(ROOT).as_posix()
    return out


def compile_text(config: str | None, overrides: list[str] | None = None) -> str:
    """The IR YAML of the pipeline for ``config`` (a path; relative paths are taken from the repository root when
    they do not exist in the working directory) with ``overrides`` applied at compile time."""
    from kfp import compiler

    from pipelines.spg_pipeline import build_pipeline

    path = Path(config) if config else None
    if path is not None and not path.exists() and (ROOT / path).exists():
        path = ROOT / path
    cfg = load_pipeline_config(path, list(overrides or []))
    config_file = config if config else ""
    if path is not None and path.resolve().is_relative_to(ROOT):
        config_file = path.resolve().relative_to(ROOT).as_posix()
    pipeline = build_pipeline(cfg, config_file)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(out))
        return out.read_text()


def compile_package(config: str | None, overrides: list[str], out: Path) -> Path:
    """Compile into ``out`` (written atomically)."""
    text = compile_text(config, overrides)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as fh:
        fh.write(text)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.compile", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare with the committed YAML instead of writing")
    args = p.parse_args(argv)
    stale = []
    for name, config in shipped_configs().items():
        target = COMPILED / name
        if args.check:
            if not target.is_file() or target.read_text() != compile_text(config):
                stale.append(str(target.relative_to(ROOT)))
        else:
            compile_package(config, [], target)
            print(f"{config} -> {target.relative_to(ROOT)}")
    if stale:
        print(f"stale compiled pipelines (run python -m pipelines.compile): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
