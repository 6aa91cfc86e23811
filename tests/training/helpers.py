"""Shared test doubles for the trainer tests: a toy task with a dense reward and small configs."""

from __future__ import annotations

from spg_lib.algos import AlgoConfig
from spg_lib.tasks.base import RewardFn
from spg_lib.training.config import LoRASettings, OptimConfig, RolloutConfig, TrainConfig


class OnesTask:
    """Reward = fraction of '1' characters in the completion (dense, so advantages are non-zero)."""

    name = "ones"

    def train_prompt(self, example):
        return f"q{example['i']}"

    def reward_kwargs(self, example):
        return {}

    def reward_functions(self, mode="fixed"):
        return (RewardFn("ones", lambda c, **_: c.count("1") / max(len(c), 1)),)


EXAMPLES = [{"i": i} for i in range(8)]

METHODS = {
    "spg-mix": dict(name="spg", neg_estimator="mix"),
    "spg-eubo": dict(name="spg", neg_estimator="eubo"),
    "spg-elbo": dict(name="spg", neg_estimator="elbo"),
    "spg-zero": dict(name="spg", neg_estimator="zero"),
    "d1": dict(name="d1", forward_type="all", num_mc=1, kl_beta=0.04),
    "wd1": dict(name="wd1", forward_type="all", num_mc=1),
    "unigrpo": dict(name="unigrpo", forward_type="all", num_mc=1, clip_eps=0.2),
    "espo": dict(name="espo", advantage="leave_one_out", clip_eps=0.2, kl_beta=1e-3),
}


def small_config(method: str = "spg-mix", out_dir: str = "runs/t", **kw) -> TrainConfig:
    algo = AlgoConfig(gen_length=16, block_length=8, num_iterations=2, **METHODS[method])
    base = dict(task="ones", algo=algo, rollout=RolloutConfig(steps=8, batch_size=4, temperature=1.0),
                optim=OptimConfig(lr=1e-3, max_grad_norm=1.0),
                lora=LoRASettings(enabled=METHODS[method].get("kl_beta", 0) > 0, r=4, alpha=8, dropout=0.0),
                num_generations=4, prompts_per_step=2, grad_accum=2, max_steps=2, seed=0, out_dir=out_dir,
                max_prompt_length=32, chunk_size=8)
    base.update(kw)
    return TrainConfig(**base)
