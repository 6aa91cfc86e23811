"""``TrainConfig``: everything `spg train` needs, loaded from ``params.yaml`` (section ``train``).

Values that copy the official SPG scripts cite docs/algorithms.md#official-hyper-parameters. A bad
configuration fails here, in ``__post_init__``, before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from spg_lib.algos import AlgoConfig
from spg_lib.config import param
from spg_lib.decoding import CacheMode, GumbelDtype, Remasking, Unmasking, check_engine_config
from spg_lib.io import BUILTIN_TINY
from spg_lib.tasks.base import Mode, PromptStyle


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    """Block-sampler settings for rollouts (docs/decoding.md#algorithm,
    docs/algorithms.md#official-hyper-parameters)."""

    steps: int = param(128, "denoising steps for the whole completion (official 128 for L=256)")
    temperature: float = param(0.9, "Gumbel-max temperature (0.9; Sudoku 0.3, docs/algorithms.md#tasks-and-rewards)")
    remasking: Remasking = param("low_confidence", "low_confidence | random")
    batch_size: int = param(6, "rows per generation call (generation_batch_size 6)")
    redecode_earlier_masks: bool | None = param(None, "True (faithful): earlier-block positions still holding [MASK] "
                                                      "compete for the current block's slots, as the official "
                                                      "sampler | False (fixed): a block is final once left; None: "
                                                      "from train.algo.mode (docs/decoding.md)")
    gumbel_dtype: GumbelDtype | None = param(None, "precision of the Gumbel noise: model (faithful: the official "
                                                   "rollout sampler samples in the model dtype) | float64 (fixed) | "
                                                   "float32 | bfloat16; None: from train.algo.mode")
    cache: CacheMode = param("none", "none (exact: full forward every step) | prefix (prompt and finished blocks' "
                                     "keys/values cached per block) | dual (the masked suffix's too); approximate, "
                                     "docs/decoding.md#cache-modes-threshold-unmasking-early-stop")
    unmasking: Unmasking = param("schedule", "schedule (fixed transfers per step, exact) | threshold (every masked "
                                             "token of the block with confidence > threshold, >= 1 per step)")
    threshold: float = param(0.9, "confidence threshold of unmasking: threshold")
    early_stop: bool = param(False, "rows with EOS among their committed tokens stop being decoded at the next block "
                                    "(the rest of the completion is EOS)")
    compile: bool = param(False, "torch.compile the KV-cache forwards (cache prefix | dual; compiled once per "
                                 "process, float rounding may differ from eager)")

    def __post_init__(self) -> None:
        check_engine_config(self, "train.rollout")
        if self.steps < 1:
            raise ValueError(f"train.rollout.steps must be >= 1, got {self.steps}")
        if self.temperature < 0:
            raise ValueError(f"train.rollout.temperature must be >= 0, got {self.temperature}")
        if self.batch_size < 1:
            raise ValueError(f"train.rollout.batch_size must be >= 1, got {self.batch_size}")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with the paper's settings (docs/algorithms.md#official-hyper-parameters)."""

    lr: float = param(3e-6, "learning rate (3e-6)")
    beta1: float = param(0.9, "AdamW β1 (0.9)")
    beta2: float = param(0.99, "AdamW β2 (0.99)")
    weight_decay: float = param(0.1, "AdamW weight decay (0.1)")
    max_grad_norm: float = param(0.2, "gradient-norm clip (0.2)")
    warmup_steps: int = param(0, "linear warm-up steps, then constant (constant_with_warmup, ratio 1e-4)")

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"train.optim.lr must be > 0, got {self.lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("train.optim.beta1/beta2 must be in [0, 1)")
        if self.max_grad_norm <= 0:
            raise ValueError(f"train.optim.max_grad_norm must be > 0, got {self.max_grad_norm}")
        if self.warmup_steps < 0:
            raise ValueError(f"train.optim.warmup_steps must be >= 0, got {self.warmup_steps}")


@dataclasses.dataclass(frozen=True)
class LoRASettings:
    """LoRA through peft (docs/algorithms.md#official-hyper-parameters: r 128, α 64, dropout 0.05,
    q/k/v/o/up/down/gate)."""

    enabled: bool = param(True, "train a LoRA adapter (false: full fine-tuning)")
    r: int = param(128, "rank")
    alpha: int = param(64, "scaling α")
    dropout: float = param(0.05, "dropout on the adapter input")
    target_modules: list[str] = param(
        help="module names (LLaDA names of q/k/v/o/gate/up/down projections)",
        factory=lambda: ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"])
    load_in_4bit: bool = param(False, "NF4 base (double quant, bf16 compute) via bitsandbytes: the official QLoRA; "
                                   "needs a CUDA GPU and bitsandbytes, and a checkpoint or hub model")

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0:
            raise ValueError("train.lora.r must be >= 1 and train.lora.alpha > 0")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"train.lora.dropout must be in [0, 1), got {self.dropout}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One RL run: model, task, algorithm, rollouts, batch geometry, optimisation and bookkeeping."""

    model: str = param(BUILTIN_TINY, "checkpoint dir, file://, hub id, or builtin:tiny")
    tokenizer: str | None = param(None, "tokenizer dir (None: same as model)")
    task: str = param("countdown", "task name (gsm8k | math500 | countdown | sudoku, or one a plugin registers)")
    plugins: list[str] = param(help="Python modules imported before the task is looked up; a module adds tasks "
                                    "with @spg_lib.tasks.registry.register_task (e.g. [mypkg.tasks])", factory=list)
    train_data: str | None = param(None, "training split source (path, s3://, hub id; None: task default)")
    prompt_style: PromptStyle = param("paper", "paper (the official training prompts) | compact (short prompts "
                                               "for tiny character-level models)")
    reward_mode: Mode = param("fixed", "fixed | faithful reward functions (docs/algorithms.md#tasks-and-rewards)")
    max_prompt_length: int = param(200, "prompt tokens kept (left truncation; Sudoku 1500)")
    algo: AlgoConfig = param(help="objective and likelihood estimator", factory=AlgoConfig)
    rollout: RolloutConfig = param(help="rollout sampler", factory=RolloutConfig)
    optim: OptimConfig = param(help="optimizer", factory=OptimConfig)
    lora: LoRASettings = param(help="LoRA adapter", factory=LoRASettings)
    num_generations: int = param(6, "g, completions per prompt (6)")
    prompts_per_step: int = param(16, "prompts per rollout across all processes (16 → 96 completions)")
    grad_accum: int = param(2, "micro-batches per optimizer step per process (2; Sudoku 4)")
    max_steps: int = param(100, "optimizer steps (paper: 6000 GSM8K/Countdown, 4000 MATH, 2500 Sudoku)")
    seed: int = param(42, "seed of data order, rollouts and masks (42)")
    out_dir: str = param("runs/train", "output directory (checkpoints/, metrics.jsonl, final/)")
    checkpoint_every: int = param(0, "optimizer steps between checkpoints (0: only the final one)")
    keep_checkpoints: int = param(2, "checkpoints kept")
    max_bad_steps: int = param(5, "consecutive non-finite losses/gradients tolerated before the run stops")
    tracking_uri: str | None = param(None, "MLflow tracking URI (None: $MLFLOW_TRACKING_URI if set, else local JSONL "
                                         "only; metrics always go to out_dir/metrics.jsonl too)")
    experiment: str = param("spg", "MLflow experiment name")
    chunk_size: int = param(256, "positions per output-head chunk in the likelihood")
    dtype: Literal["float32", "bfloat16"] = param("float32", "float32 | bfloat16 (GPU)")
    before_after_eval: bool = param(False, "evaluate the starting and the trained model with the `evaluate` "
                                           "section's protocol and print a before/after table")

    def __post_init__(self) -> None:
        faithful = self.algo.mode == "faithful"
        resolved = {"redecode_earlier_masks": faithful, "gumbel_dtype": "model" if faithful else "float64"}
        unset = {k: v for k, v in resolved.items() if getattr(self.rollout, k) is None}
        if unset:  # the sampler's faithful flags follow the algorithm's mode unless set explicitly
            object.__setattr__(self, "rollout", dataclasses.replace(self.rollout, **unset))  # re-runs its checks
        for name in ("num_generations", "prompts_per_step", "grad_accum", "max_steps", "max_prompt_length",
                     "keep_checkpoints", "max_bad_steps", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lora.load_in_4bit and not self.lora.enabled:
            raise ValueError("train.lora.load_in_4bit needs train.lora.enabled: a 4-bit base is frozen, only a LoRA "
                             "adapter on it can train")
        if self.lora.load_in_4bit and self.model == BUILTIN_TINY:
            raise ValueError("train.lora.load_in_4bit loads a checkpoint through bitsandbytes; builtin:tiny is "
                             "built in memory (set train.lora.load_in_4bit false)")
        if self.checkpoint_every < 0:
            raise ValueError(f"train.checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.num_generations < 2 and self.algo.advantage in ("group_center", "leave_one_out", "group_zscore"):
            raise ValueError("train.num_generations must be >= 2: group advantages need a group")
        if self.rollout.steps < self.algo.num_blocks:
            raise ValueError(f"train.rollout.steps ({self.rollout.steps}) must be >= the number of blocks "
                             f"algo.gen_length / algo.block_length = {self.algo.num_blocks}")
        if self.rows_per_step % self.grad_accum:
            raise ValueError(f"prompts_per_step × num_generations = {self.rows_per_step} must be divisible by "
                             f"train.grad_accum ({self.grad_accum})")

    @property
    def rows_per_step(self) -> int:
        """Completions per rollout across all processes."""
        return self.prompts_per_step * self.num_generations

    def check_world(self, world_size: int) -> None:
        """Rows must split evenly into processes × micro-batches."""
        if self.rows_per_step % (world_size * self.grad_accum):
            raise ValueError(f"prompts_per_step × num_generations = {self.rows_per_step} must be divisible by "
                             f"processes × grad_accum = {world_size} × {self.grad_accum}")
