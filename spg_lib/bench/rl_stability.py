"""`spg bench rl-stability`: does RL with cached / approximate rollouts keep the gain of exact rollouts?

    spg bench rl-stability --config params.yaml --base runs/base/model          # the default CPU run, twice
    spg bench rl-stability --config params.yaml --base runs/base/model -o train.max_steps=40 --out /tmp/rl

Trains the configuration's SPG run twice from the same starting checkpoint with the same seeds: once with exact
rollouts (``train.rollout.cache=none``, scheduled unmasking) and once with ``--fast`` (default: dual cache,
threshold unmasking, early stop), then evaluates the starting model and both trained models with the file's
``evaluate`` protocol (the exact sampler, the same for all three). Prints a table (wall time and its ratio,
rollout reward first/last, accuracy, gain over the start, the fast run's share of the exact gain) and writes
``OUT/rl_stability.json`` and ``OUT/reward_curves.png``. Goal of issue 14: share >= 80 % in less wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

FAST = ["train.rollout.cache=dual", "train.rollout.unmasking=threshold", "train.rollout.early_stop=true"]
EXACT = ["train.rollout.cache=none", "train.rollout.unmasking=schedule", "train.rollout.early_stop=false"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="params.yaml", help="parameter file of the run (default: params.yaml)")
    parser.add_argument("--base", default=None, help="starting checkpoint (default: <base_model.out_dir>/model, "
                                                     "written by `spg base-model` / `make run`)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override applied to both runs (e.g. train.max_steps=40)")
    parser.add_argument("--fast", action="append", default=None, metavar="KEY=VALUE",
                        help=f"overrides of the fast run (repeatable; default: {' '.join(FAST)})")
    parser.add_argument("--out", default="benchmarks/rl_stability", help="output directory")


def _run(cfg, out: Path, label: str) -> dict[str, Any]:
    import torch

    from spg_lib.pipeline.summary import reward_curve
    from spg_lib.training.run import run_train

    train = dataclasses.replace(cfg.train, out_dir=str(out / label), before_after_eval=False)
    torch.manual_seed(train.seed)  # dropout's global RNG, as `spg train`
    start = time.perf_counter()
    result = run_train(train, progress=False)
    wall = time.perf_counter() - start
    curve = reward_curve(out / label / "metrics.jsonl")
    return {"label": label, "wall_time_s": wall, "final_model": result["final_model"], "curve": curve}


def _evaluate(cfg, model: str, out: Path) -> float:
    from spg_lib.tasks.evaluate import evaluate

    ev = dataclasses.replace(cfg.evaluate, model=model, out_dir=str(out), progress=False)
    return float(evaluate(ev).accuracy)


def _plot(runs: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for r in runs:
        ax.plot([p["step"] for p in r["curve"]], [p["reward"] for p in r["curve"]], label=r["label"])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("mean rollout reward")
    ax.legend()
    fig.savefig(path, dpi=100)


def run(args: argparse.Namespace) -> int:
    from spg_lib.io import InputError, atomic_write_json
    from spg_lib.pipeline.config import load_pipeline_config

    fast = args.fast if args.fast is not None else FAST
    exact_cfg = load_pipeline_config(args.config, [*args.override, *EXACT])
    fast_cfg = load_pipeline_config(args.config, [*args.override, *fast])
    base = args.base or str(Path(exact_cfg.base_model.out_dir) / "model")
    if not Path(base).is_dir():
        raise InputError(f"--base {base}: no checkpoint there (run `spg base-model --config {args.config}` first)")
    exact_cfg = dataclasses.replace(exact_cfg, train=dataclasses.replace(exact_cfg.train, model=base))
    fast_cfg = dataclasses.replace(fast_cfg, train=dataclasses.replace(fast_cfg.train, model=base))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base_acc = _evaluate(exact_cfg, base, out / "eval-base")
    runs = [_run(exact_cfg, out, "exact"), _run(fast_cfg, out, "fast")]
    for r, cfg in zip(runs, (exact_cfg, fast_cfg), strict=True):
        r["accuracy"] = _evaluate(cfg, r["final_model"], out / f"eval-{r['label']}")
        r["gain"] = r["accuracy"] - base_acc
        rewards = [p["reward"] for p in r["curve"]]
        r["reward_first"], r["reward_last"] = (rewards[0], rewards[-1]) if rewards else (float("nan"),) * 2
    exact, quick = runs
    share = quick["gain"] / exact["gain"] if exact["gain"] > 0 else float("nan")
    speed = exact["wall_time_s"] / quick["wall_time_s"]
    print(f"RL with exact vs fast rollouts ({args.config}, start {base}: {base_acc:.1f} %; fast: {' '.join(fast)})")
    print(f"{'rollouts':10s}{'wall s':>10s}{'speed-up':>10s}{'reward 1st':>12s}{'reward last':>12s}"
          f"{'accuracy %':>12s}{'gain':>8s}")
    for r in runs:
        ratio = exact["wall_time_s"] / r["wall_time_s"]
        print(f"{r['label']:10s}{r['wall_time_s']:10.0f}{ratio:10.2f}{r['reward_first']:12.3f}"
              f"{r['reward_last']:12.3f}{r['accuracy']:12.1f}{r['gain']:+8.1f}")
    print(f"fast keeps {100 * share:.0f} % of the exact gain at {speed:.2f}x the speed "
          f"(goal: >= 80 % in less wall time: {'met' if share >= 0.8 and speed > 1 else 'NOT met'})")
    _plot(runs, out / "reward_curves.png")
    atomic_write_json(out / "rl_stability.json", {
        "config": args.config, "base": base, "base_accuracy": base_acc, "fast_overrides": fast,
        "runs": [{k: v for k, v in r.items()} for r in runs], "gain_share": share, "speedup": speed})
    return 0
