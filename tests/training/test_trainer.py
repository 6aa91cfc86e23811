"""The RL trainer on the tiny model: every method trains, bad configs fail early, NaNs are skipped, resume is exact."""

from __future__ import annotations

import pytest
import torch

from spg_lib.models import build_tiny_tokenizer, init_tiny_model
from spg_lib.training.run import wrap_lora
from spg_lib.training.trainer import NonFiniteError, Trainer
from tests.training.helpers import EXAMPLES, METHODS, OnesTask, small_config


def _trainer(cfg, seed=0):
    model = wrap_lora(init_tiny_model(seed=seed), cfg.lora)
    return Trainer(cfg, model, build_tiny_tokenizer(), EXAMPLES, OnesTask())


def _trainable(trainer):
    return {n: p.detach().clone() for n, p in trainer.acc.unwrap_model(trainer.model).named_parameters()
            if p.requires_grad}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_updates_parameters(method, tmp_path):
    tr = _trainer(small_config(method, out_dir=str(tmp_path)))
    before = _trainable(tr)
    history = tr.train(progress=False)
    after = _trainable(tr)
    assert len(history) == 2
    name = METHODS[method]["name"]
    for row in history:
        assert torch.isfinite(torch.tensor(row[f"{name}/loss"]))
        assert row["train/grad_norm"] > 0
    assert {"reward/mean", "reward/ones", "adv/abs_mean", "rollout/completion_length",
            "rollout/tokens_per_s", "train/lr"} <= set(history[0])
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert len(changed) == len(before), f"unchanged: {set(before) - set(changed)}"
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2
    assert (tmp_path / "checkpoints" / "step-2" / "meta.json").is_file()


def test_bad_configuration_fails_before_model_load():
    with pytest.raises(ValueError, match="grad_accum"):
        small_config(prompts_per_step=1, num_generations=3, grad_accum=2)
    with pytest.raises(ValueError, match=r"rollout\.steps"):
        small_config(rollout=small_config().rollout.__class__(steps=1))
    with pytest.raises(ValueError, match="kl_beta"):
        from spg_lib.algos import AlgoConfig

        AlgoConfig(name="spg", kl_beta=0.04)


def test_non_finite_steps_are_skipped_then_stop(tmp_path, monkeypatch):
    import spg_lib.training.trainer as trainer_mod

    real = trainer_mod.method_loss

    def nan_loss(*a, **k):
        loss, m = real(*a, **k)
        return loss * float("nan"), m

    monkeypatch.setattr(trainer_mod, "method_loss", nan_loss)
    tr = _trainer(small_config(out_dir=str(tmp_path), max_steps=10, max_bad_steps=2))
    before = _trainable(tr)
    with pytest.raises(NonFiniteError, match="step 3"):
        tr.train(progress=False)
    assert tr.skipped_steps == 3
    after = _trainable(tr)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_resume_continues_exactly(tmp_path):
    full = _trainer(small_config(out_dir=str(tmp_path / "a"), max_steps=5))
    full.train(progress=False)
    ref = _trainable(full)

    part = _trainer(small_config(out_dir=str(tmp_path / "b"), max_steps=3))  # stops mid-rollout (μ = 2)
    part.train(progress=False)
    resumed = _trainer(small_config(out_dir=str(tmp_path / "b"), max_steps=5), seed=123)  # other init: overwritten
    assert resumed.resume()
    assert resumed.step == 3 and resumed.buffer is not None
    resumed.train(progress=False)
    got = _trainable(resumed)
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=0, atol=0)


def test_resume_through_accelerate_save_state(tmp_path):
    """The FSDP / DeepSpeed checkpoint path (optimizer state via Accelerator.save_state / load_state), run on CPU."""

    def sharded(cfg, seed=0):
        tr = _trainer(cfg, seed=seed)
        tr.sharded_state = True
        return tr

    full = _trainer(small_config(out_dir=str(tmp_path / "a"), max_steps=4))
    full.train(progress=False)
    part = sharded(small_config(out_dir=str(tmp_path / "b"), max_steps=3))
    part.train(progress=False)
    ckpt = tmp_path / "b" / "checkpoints" / "step-3"
    assert (ckpt / "accelerate").is_dir() and "optimizer" not in torch.load(ckpt / "state.pt", weights_only=False)
    resumed = sharded(small_config(out_dir=str(tmp_path / "b"), max_steps=4), seed=7)
    resumed.train(resume=True, progress=False)
    ref, got = _trainable(full), _trainable(resumed)
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=0, atol=0)


def test_sharded_parameter_paths_match_the_direct_ones(tmp_path):
    """With sharded parameters (FSDP, ZeRO-3) every forward goes through the prepared model (no hidden-state
    shortcut) and the final model is rebuilt from the gathered state dict: same numbers on one CPU process."""
    from spg_lib.models.capabilities import ForwardOnly as _ViaForward
    from spg_lib.training.objective import estimate
    from spg_lib.training.run import final_model

    cfg = small_config("d1", out_dir=str(tmp_path / "a"))  # LoRA (kl_beta > 0): merge on export
    torch.manual_seed(0)  # peft initialises the adapter from the global RNG
    direct = _trainer(cfg)
    ro = direct.make_rollout()
    mb = ro.micro_batches[0]
    plain = direct.acc.unwrap_model(direct.model)
    a = estimate(plain, mb, cfg.algo, mask_id=direct.mask_id, generator=direct._mask_gen(0, 0, 0))
    b = estimate(_ViaForward(direct.model), mb, cfg.algo, mask_id=direct.mask_id, generator=direct._mask_gen(0, 0, 0))
    torch.testing.assert_close(a.value, b.value, rtol=1e-5, atol=1e-5)

    torch.manual_seed(0)
    via = _trainer(small_config("d1", out_dir=str(tmp_path / "b")))
    via.sharded_params = True
    assert isinstance(via._policy(update=True), _ViaForward)
    direct.train(progress=False)
    via.train(progress=False)
    exported = {n: p.detach().clone() for n, p in final_model(via, via.cfg).named_parameters()}
    for n, p in final_model(direct, direct.cfg).named_parameters():
        torch.testing.assert_close(exported[n], p, rtol=1e-4, atol=1e-5)


def test_resumed_run_continues_the_same_mlflow_run(tmp_path):
    """A resumed run logs into the MLflow run of the run it continues (the checkpoint carries the run id)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    part = _trainer(small_config(out_dir=str(tmp_path / "run"), max_steps=2, tracking_uri=uri, checkpoint_every=1))
    part.train(progress=False)
    run_id = part.mlflow_run_id
    assert run_id
    resumed = _trainer(small_config(out_dir=str(tmp_path / "run"), max_steps=4, tracking_uri=uri))
    resumed.train(resume=True, progress=False)
    assert resumed.mlflow_run_id == run_id
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(part.cfg.experiment).experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    steps = sorted(m.step for m in client.get_metric_history(run_id, "train_loss"))
    assert steps == [1, 2, 3, 4]
