"""Ablation of SPG's negative-advantage bound and the baselines from one SFT checkpoint (not part of the tests).

    python benchmarks/ablation.py --config params.yaml --out runs/ablation            # 7 methods × 3 seeds
    python benchmarks/ablation.py --methods spg-mix,d1 --seeds 0 --max-steps 10        # a quick look

Every run starts from the same base checkpoint (``train.model`` of the config, e.g. the DVC stage output
``runs/base/model``; run ``dvc repro base_model`` first), uses the config's ``train`` section with only the
method's fields overridden, and is evaluated with the ``evaluate`` section's protocol. Writes
``results.json`` (every run), ``table.md`` (final accuracy mean ± std per method) and ``reward_curves.png``.

The paper's ordering (Mixture ≥ EUBO > ELBO > no negatives; SPG > D1/WD1/UniGRPO) is the hypothesis under
test, not something this script assumes. With a fully fine-tuned tiny model there is no LoRA adapter whose
removal gives the reference policy, so D1 and UniGRPO run without their KL term (``kl_beta: 0``) unless
``train.lora.enabled`` is true.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

from spg_lib.pipeline.config import load_pipeline_config
from spg_lib.tasks.evaluate import EvalConfig
from spg_lib.tasks.io import atomic_write, atomic_write_json
from spg_lib.training.config import TrainConfig

# method label -> algo overrides (on top of the config's train.algo)
METHODS: dict[str, dict] = {
    "spg-mix": dict(name="spg", neg_estimator="mix"),
    "spg-eubo": dict(name="spg", neg_estimator="eubo"),
    "spg-elbo": dict(name="spg", neg_estimator="elbo"),
    "spg-no-neg": dict(name="spg", neg_estimator="zero"),
    "d1": dict(name="d1", forward_type="all", num_mc=1, kl_beta=0.04, clip_eps=0.5),
    "wd1": dict(name="wd1", forward_type="all", num_mc=1),
    "unigrpo": dict(name="unigrpo", forward_type="all", num_mc=1, kl_beta=0.01, clip_eps=0.2),
}


def run_one(base: TrainConfig, label: str, seed: int, out: Path, ev: EvalConfig, max_steps: int | None) -> dict:
    from spg_lib.models import load_model, load_tokenizer
    from spg_lib.tasks.registry import get_task
    from spg_lib.training.run import evaluate_for_table, run_train

    algo = dict(METHODS[label])
    if not base.lora.enabled and algo.get("kl_beta", 0) > 0:
        algo["kl_beta"] = 0.0  # no adapter to disable for the reference policy (see module docstring)
    cfg = dataclasses.replace(
        base, algo=dataclasses.replace(base.algo, **algo), seed=seed, out_dir=str(out / f"{label}-s{seed}"),
        max_steps=max_steps or base.max_steps, checkpoint_every=0, tracking_uri=None, before_after_eval=False)
    torch.manual_seed(seed)  # dropout, as `spg train` does at its edge
    start = time.perf_counter()
    result = run_train(cfg, progress=False)
    wall = time.perf_counter() - start
    model, tok = load_model(result["final_model"]), load_tokenizer(result["final_model"])
    metrics = evaluate_for_table(model, tok, get_task(cfg.task), ev)
    curve = [(row["step"], row["reward/mean"]) for row in result["history"] if "reward/mean" in row]
    print(f"{label:11s} seed {seed}: accuracy {metrics.accuracy:.1f}%  ({wall:.0f} s)", flush=True)
    return {"method": label, "seed": seed, "accuracy": metrics.accuracy, "train_wall_s": wall,
            "reward_curve": curve, "skipped_steps": result["skipped_steps"]}


def write_report(runs: list[dict], out: Path) -> str:
    lines = ["| method | final accuracy (%) mean ± std | seeds |", "|---|---|---|"]
    for label in METHODS:
        acc = [r["accuracy"] for r in runs if r["method"] == label]
        if acc:
            std = statistics.stdev(acc) if len(acc) > 1 else 0.0
            lines.append(f"| {label} | {statistics.fmean(acc):.1f} ± {std:.1f} | {len(acc)} |")
    table = "\n".join(lines) + "\n"
    with atomic_write(out / "table.md") as fh:
        fh.write(table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label in METHODS:
        curves = [r["reward_curve"] for r in runs if r["method"] == label and r["reward_curve"]]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        steps = [c[0] for c in curves[0][:n]]
        mean = [statistics.fmean(c[i][1] for c in curves) for i in range(n)]
        ax.plot(steps, mean, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("mean rollout reward (mean over seeds)")
    ax.legend()
    fig.tight_layout()
    tmp = out / "reward_curves.tmp.png"
    fig.savefig(tmp, dpi=120)
    tmp.replace(out / "reward_curves.png")
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="params.yaml")
    p.add_argument("-o", "--override", action="append", default=[],
                   help="full dotted override, e.g. train.optim.lr=1e-4 (as `spg train -o`)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma list of {list(METHODS)}")
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    p.add_argument("--max-steps", type=int, default=None, help="override train.max_steps")
    p.add_argument("--out", default="runs/ablation")
    args = p.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        p.error(f"--methods: unknown {unknown}; choose from {list(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    tree = load_pipeline_config(args.config, args.override)
    base, ev = tree.train, tree.evaluate
    if not Path(base.model).exists() and not base.model.startswith("builtin:"):
        raise SystemExit(f"train.model {base.model!r} does not exist: run `dvc repro base_model` first")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for label in methods:
        for seed in seeds:
            runs.append(run_one(base, label, seed, out, ev, args.max_steps))
            atomic_write_json(out / "results.json", runs)  # progress survives an interrupted sweep
    print(write_report(runs, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
