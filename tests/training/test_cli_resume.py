"""`spg train` through the real CLI: a run SIGKILLed right after a checkpoint and continued with --resume ends
bitwise equal to an uninterrupted run (final weights and the metrics that do not measure time).

The toy task comes in through ``train.plugins`` (tests/training/toy_task.py); LoRA dropout is on, so the
resumed run must restore the global torch RNG that `spg train` seeds at the CLI edge, and μ = 3 puts the
killed checkpoint (step 2) in the middle of a rollout, so the rollout buffer must come back too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
MAX_STEPS = 4
KILL_AFTER = 2  # checkpoint step to wait for before SIGKILL


def _config(tmp: Path, out: str) -> Path:
    cfg = {"train": {
        "model": "builtin:tiny", "task": "toy_dense", "plugins": ["tests.training.toy_task"],
        "train_data": str(tmp / "train.jsonl"), "max_prompt_length": 32,
        "algo": {"name": "spg", "neg_estimator": "mix", "gen_length": 16, "block_length": 8, "num_iterations": 3},
        "rollout": {"steps": 4, "batch_size": 4, "temperature": 1.0},
        "optim": {"lr": 1e-3, "max_grad_norm": 0.2},
        "lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.2},
        "num_generations": 2, "prompts_per_step": 2, "grad_accum": 2, "max_steps": MAX_STEPS, "seed": 3,
        "out_dir": str(tmp / out), "checkpoint_every": 1, "keep_checkpoints": 2, "chunk_size": 8,
    }}
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _spawn(tmp: Path, config: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "TOKENIZERS_PARALLELISM": "false"}
    log = tmp / f"{config.stem}{'-'.join(('', *extra))}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "spg_lib.cli", "train", "--config", str(config),
                                 "--no-progress", *extra], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    return proc, log


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    assert proc.wait(timeout=timeout) == 0, log.read_text()[-4000:]


def _metric_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(6)))
    killed_cfg, straight_cfg = _config(tmp_path, "killed"), _config(tmp_path, "straight")
    straight, straight_log = _spawn(tmp_path, straight_cfg)  # runs alongside the one that gets killed
    victim, victim_log = _spawn(tmp_path, killed_cfg)
    try:
        ckpt = tmp_path / "killed" / "checkpoints" / f"step-{KILL_AFTER}"  # appears only complete (atomic rename)
        deadline = time.monotonic() + 300
        while not ckpt.is_dir():
            assert victim.poll() is None, "run ended before its checkpoint:\n" + victim_log.read_text()[-4000:]
            assert time.monotonic() < deadline, "no checkpoint in time:\n" + victim_log.read_text()[-4000:]
            time.sleep(0.02)
        assert victim.poll() is None, "run finished before it could be killed"
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=60) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
    assert not (tmp_path / "killed" / "final").exists()

    resumed, resumed_log = _spawn(tmp_path, killed_cfg, "--resume")
    _finish(resumed, resumed_log)
    _finish(straight, straight_log)

    a = load_file(str(tmp_path / "killed" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after kill + resume"

    from spg_lib.models import init_tiny_model

    init = init_tiny_model().state_dict()
    shared = [n for n in a if n in init]
    assert shared and any(not torch.equal(a[n], init[n]) for n in shared), "training changed nothing"

    rows_a, rows_b = _metric_rows(tmp_path / "killed"), _metric_rows(tmp_path / "straight")
    assert [r["step"] for r in rows_a] == list(range(1, MAX_STEPS + 1))  # each step logged once, none lost
    timing = ("time_s", "per_s")  # wall-clock figures differ between runs
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert {k: v for k, v in ra.items() if not k.endswith(timing)} == \
            {k: v for k, v in rb.items() if not k.endswith(timing)}
    assert any(r["train/grad_norm"] > 0 for r in rows_a)
