"""Masked-diffusion SFT (d1 SFT, docs/algorithms.md#d1-sft): noise, both loss weightings, batch layout, learning."""

from __future__ import annotations

import math

import pytest
import torch

from spg_lib.models import build_tiny_tokenizer, init_tiny_model
from spg_lib.training.sft import EPS_T, SFTConfig, build_sft_batch, sft_loss, sft_loss_flat, sft_mask, train_sft


def test_mask_only_touches_responses_and_t_is_bounded():
    resp = torch.tensor([[0, 0, 1, 1, 1, 1]] * 64, dtype=torch.bool)
    masked, t = sft_mask(resp, torch.Generator().manual_seed(0))
    assert not (masked & ~resp).any()
    assert ((t >= EPS_T) & (t <= 1)).all()
    # the masked fraction follows t: high-t rows are masked more on average
    frac = masked[:, 2:].float().mean(1)
    hi, lo = frac[t > 0.7].mean(), frac[t < 0.3].mean()
    assert hi > lo + 0.3


def test_losses_match_hand_computation():
    V = 3
    logits = torch.zeros(1, 3, V)
    logits[0, 1] = torch.tensor([math.log(2.0), 0.0, 0.0])  # p(0) = 2/4 at position 1
    targets = torch.tensor([[0, 0, 1]])
    masked = torch.tensor([[False, True, True]])
    resp = torch.tensor([[False, True, True]])
    t = torch.tensor([0.5])
    ce1, ce2 = -math.log(0.5), -math.log(1 / 3)
    # ELBO weighting: Σ CE/t over masked, / number of response tokens
    assert sft_loss(logits, targets, masked, t, resp).item() == pytest.approx((ce1 + ce2) / 0.5 / 2)
    # flat: mean CE over masked tokens
    assert sft_loss_flat(logits, targets, masked).item() == pytest.approx((ce1 + ce2) / 2)


def test_batch_layout_left_pads_prompts_and_pads_responses_to_canvas():
    tok = build_tiny_tokenizer()
    ids, att, resp = build_sft_batch(tok, ["ab", "abcdef"], ["12", "1"], response_length=6)
    assert ids.shape == att.shape == resp.shape and ids.shape[1] - int(resp[0].sum()) > 0
    assert int(resp[0].sum()) == 6 and bool((resp[0] == resp[1]).all())  # same canvas for every row
    P = ids.shape[1] - 6
    assert att[0, 0] == 0 and att[1, 0] == 1  # the shorter prompt is left-padded
    assert ids[0, P + 2].item() == tok.eos_token_id  # "12" then EOS
    assert (ids[0, P + 3:] == tok.pad_token_id).all()  # then padding fills the canvas
    with pytest.raises(ValueError, match="response_length"):
        build_sft_batch(tok, ["a"], ["123456789"], response_length=4)


@pytest.mark.parametrize("weighting", ["elbo", "flat"])
def test_training_lowers_the_loss_on_a_fixed_set(weighting):
    torch.manual_seed(0)
    tok = build_tiny_tokenizer()
    model = init_tiny_model(seed=0)
    ids, att, resp = build_sft_batch(tok, ["q1", "q2", "q3", "q4"], ["1111", "2222", "3333", "4444"])
    cfg = SFTConfig(steps=30, batch_size=4, lr=3e-3, warmup_steps=2, log_every=10, loss_weighting=weighting)
    history = train_sft(model, ids, att, resp, int(tok.mask_token_id), cfg)
    assert len(history) == 3 and history[-1]["loss"] < 0.7 * history[0]["loss"]


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match=r"sft\.loss_weighting"):
        SFTConfig(loss_weighting="bogus")
    with pytest.raises(ValueError, match=r"sft\.steps"):
        SFTConfig(steps=0)


def test_plugin_task_runs_sft_and_compact_rl(tmp_path, monkeypatch):
    """A task that a plugin module registers (tests/training/toy_task.py) gets compact prompts, SFT targets and
    its own teacher defect through its `Task` methods: `run_sft` (2 steps), then one RL step with the
    before/after evaluation, all with ``prompt_style: compact``."""
    import json

    from spg_lib.tasks.evaluate import EvalConfig
    from spg_lib.training import run as run_mod
    from tests.training.helpers import small_config

    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(1, 9)))  # -i != i
    seen = {}
    real_batch = run_mod.build_sft_batch

    def capture(tokenizer, prompts, responses, **kw):
        seen.update(prompts=list(prompts), responses=list(responses))
        return real_batch(tokenizer, prompts, responses, **kw)

    monkeypatch.setattr(run_mod, "build_sft_batch", capture)
    sft = run_mod.SFTRunConfig(task="toy_dense", plugins=["tests.training.toy_task"], train_data=str(data),
                               prompt_style="compact", out_dir=str(tmp_path / "sft"),
                               teacher_defect="negated", teacher_defect_fraction=0.5,
                               sft=SFTConfig(steps=2, batch_size=4, warmup_steps=0, log_every=1))
    result = run_mod.run_sft(sft, log=lambda *_: None)
    assert seen["prompts"] == [f"i={i}" for i in range(1, 9)]  # the task's compact prompt
    negated = [r for r in seen["responses"] if r.startswith("<answer>-")]
    assert len(negated) == 4  # round(0.5 · 8) demonstrations carry the defect, the others are gold
    assert set(seen["responses"]) - set(negated) <= {f"<answer>{i}</answer>" for i in range(1, 9)}

    cfg = small_config(model=result["model_dir"], task="toy_dense", plugins=["tests.training.toy_task"],
                       train_data=str(data), prompt_style="compact", max_steps=1, before_after_eval=True,
                       out_dir=str(tmp_path / "train"))
    evaluation = EvalConfig(task="toy_dense", data=str(data), prompt_style="compact", gen_length=16, block_length=8,
                            steps=8, batch_size=4, limit=4, progress=False)
    out = run_mod.run_train(cfg, evaluation=evaluation, progress=False)
    assert out["final_model"] is not None
    for key in ("eval_before", "eval_after"):
        assert (out[key]["task"], out[key]["prompt_style"], out[key]["n"]) == ("toy_dense", "compact", 4)
