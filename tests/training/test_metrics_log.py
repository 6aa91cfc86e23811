"""Per-step logging: metrics.jsonl carries rewards, advantage statistics, loss and bounds, lengths, learning rate,
timings, throughput and skipped-step counts; the progress bar shows up only when asked for."""

from __future__ import annotations

import json
import math

import pytest
import torch

from spg_lib.models import build_tiny_tokenizer, init_tiny_model
from spg_lib.training.config import OptimConfig
from spg_lib.training.run import wrap_lora
from spg_lib.training.trainer import NonFiniteError, Trainer
from tests.training.helpers import EXAMPLES, OnesTask, small_config

ROLLOUT_KEYS = {"reward/mean", "reward/std", "reward/ones", "adv/mean", "adv/std", "adv/abs_mean", "adv/pos_fraction",
                "adv/zero_fraction", "rollout/completion_length", "rollout/time_s", "rollout/tokens_per_s"}
STEP_KEYS = {"train/loss", "train/grad_norm", "train/lr", "train/update_time_s", "train/step_time_s",
             "train/tokens_per_s", "train/step_skipped", "train/skipped_steps", "train/inner_iteration"}


def _rows(tmp_path):
    return [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]


def _trainer(cfg):
    return Trainer(cfg, wrap_lora(init_tiny_model(seed=0), cfg.lora), build_tiny_tokenizer(), EXAMPLES, OnesTask())


def test_metrics_jsonl_has_every_figure(tmp_path, capsys):
    cfg = small_config("spg-mix", out_dir=str(tmp_path), max_steps=3, optim=OptimConfig(lr=1e-3, warmup_steps=4))
    history = _trainer(cfg).train(progress=True)
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3] == [h["step"] for h in history]
    for r in rows:
        assert STEP_KEYS | {"spg/loss", "spg/elbo", "spg/eubo"} <= set(r)
        assert r["train/loss"] == pytest.approx(r["spg/loss"])
        assert r["spg/elbo"] <= 0 and math.isfinite(r["spg/eubo"])
        assert r["train/step_time_s"] >= r["train/update_time_s"] > 0 and r["train/tokens_per_s"] > 0
        assert r["train/step_skipped"] == 0 and r["train/skipped_steps"] == 0
    # μ = 2: rollouts at steps 1 and 3 carry the rollout figures
    assert ROLLOUT_KEYS <= set(rows[0]) and ROLLOUT_KEYS <= set(rows[2]) and not ROLLOUT_KEYS & set(rows[1])
    r = rows[0]
    assert 0 <= r["reward/mean"] <= 1 and r["reward/mean"] == pytest.approx(r["reward/ones"])
    assert abs(r["adv/mean"]) < 1e-6  # group-centred
    assert 0 <= r["adv/zero_fraction"] <= 1 and 0 <= r["adv/pos_fraction"] <= 1
    assert 0 < r["rollout/completion_length"] <= cfg.algo.gen_length and r["rollout/tokens_per_s"] > 0
    # the rate each step used: linear warm-up over 4 steps
    assert [x["train/lr"] for x in rows] == pytest.approx([2.5e-4, 5e-4, 7.5e-4])
    assert [x["train/inner_iteration"] for x in rows] == [0, 1, 0]
    err = capsys.readouterr().err
    assert "spg ones" in err and "3/3" in err  # tqdm bar on stderr


def test_no_progress_bar_when_disabled(tmp_path, capsys):
    _trainer(small_config("spg-mix", out_dir=str(tmp_path), max_steps=1)).train(progress=False)
    assert "spg ones" not in capsys.readouterr().err


def test_skipped_steps_are_logged(tmp_path, monkeypatch):
    import spg_lib.training.trainer as trainer_mod

    real = trainer_mod.method_loss

    def nan_loss(*a, **k):
        loss, m = real(*a, **k)
        return loss * float("nan"), m

    monkeypatch.setattr(trainer_mod, "method_loss", nan_loss)
    with pytest.raises(NonFiniteError):
        _trainer(small_config(out_dir=str(tmp_path), max_steps=10, max_bad_steps=1)).train(progress=False)
    rows = _rows(tmp_path)
    assert [r["train/step_skipped"] for r in rows] == [1.0]
    assert [r["train/skipped_steps"] for r in rows] == [1.0]


def test_resumed_run_rewrites_the_log_after_its_checkpoint(tmp_path):
    _trainer(small_config(out_dir=str(tmp_path), max_steps=2, checkpoint_every=1)).train(progress=False)
    with open(tmp_path / "metrics.jsonl", "a") as fh:  # rows a killed run logged after its last checkpoint
        fh.write(json.dumps({"step": 3, "stale": 1}) + "\n" + '{"step": 4, "cut sho')
    _trainer(small_config(out_dir=str(tmp_path), max_steps=3)).train(resume=True, progress=False)
    rows = _rows(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3] and "stale" not in rows[2]


def test_fresh_run_refuses_earlier_checkpoints(tmp_path):
    _trainer(small_config(out_dir=str(tmp_path), max_steps=1)).train(progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        _trainer(small_config(out_dir=str(tmp_path), max_steps=1)).train(progress=False)
    assert torch.load(tmp_path / "checkpoints" / "step-1" / "state.pt", weights_only=False)["step"] == 1
