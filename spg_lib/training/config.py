"""``TrainConfig``: everything `spg train` needs, loaded from ``params.yaml`` (section ``train``).

Values that copy the official SPG scripts cite algorithms.md §8 (the reference). A bad configuration fails
here, in ``__post_init__``, before any model is loaded.
"""

from __future__ import annotations

import dataclasses

from spg_lib.algos import AlgoConfig


def _f(default, help_text: str):
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    """Block-sampler settings for rollouts (§1.3, §8.1)."""

    steps: int = _f(128, "denoising steps for the whole completion (official 128 for L=256)")
    temperature: float = _f(0.9, "Gumbel-max temperature (0.9; Sudoku 0.3, §6.5)")
    remasking: str = _f("low_confidence", "low_confidence | random")
    batch_size: int = _f(6, "rows per generation call (generation_batch_size 6)")

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"train.rollout.steps must be >= 1, got {self.steps}")
        if self.temperature < 0:
            raise ValueError(f"train.rollout.temperature must be >= 0, got {self.temperature}")
        if self.remasking not in ("low_confidence", "random"):
            raise ValueError(f"train.rollout.remasking must be low_confidence or random, got {self.remasking!r}")
        if self.batch_size < 1:
            raise ValueError(f"train.rollout.batch_size must be >= 1, got {self.batch_size}")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with the paper's settings (§8.1)."""

    lr: float = _f(3e-6, "learning rate (3e-6)")
    beta1: float = _f(0.9, "AdamW β1 (0.9)")
    beta2: float = _f(0.99, "AdamW β2 (0.99)")
    weight_decay: float = _f(0.1, "AdamW weight decay (0.1)")
    max_grad_norm: float = _f(0.2, "gradient-norm clip (0.2)")
    warmup_steps: int = _f(0, "linear warm-up steps, then constant (constant_with_warmup, ratio 1e-4)")

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
    """LoRA through peft (§8.1: r 128, α 64, dropout 0.05, q/k/v/o/up/down/gate)."""

    enabled: bool = _f(True, "train a LoRA adapter (false: full fine-tuning)")
    r: int = _f(128, "rank")
    alpha: int = _f(64, "scaling α")
    dropout: float = _f(0.05, "dropout on the adapter input")
    target_modules: list[str] = dataclasses.field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"],
        metadata={"help": "module names (LLaDA names of q/k/v/o/gate/up/down projections)"})
    load_in_4bit: bool = _f(False, "NF4 base (double quant, bf16 compute) via bitsandbytes: the official QLoRA; "
                                   "needs a CUDA GPU and bitsandbytes, and a checkpoint or hub model")

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha <= 0:
            raise ValueError("train.lora.r must be >= 1 and train.lora.alpha > 0")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"train.lora.dropout must be in [0, 1), got {self.dropout}")


@dataclasses.dataclass(frozen=True)
class TrainEvalConfig:
    """Greedy test-split evaluation before and after training: the before/after table of `spg train`."""

    enabled: bool = _f(False, "evaluate the starting and the trained model on the test split")
    data: str | None = _f(None, "test split source (None: the task's default)")
    limit: int | None = _f(None, "only the first N test examples")
    gen_length: int | None = _f(None, "tokens generated (None: algo.gen_length)")
    block_length: int | None = _f(None, "decoding block (None: algo.block_length)")
    steps: int | None = _f(None, "denoising steps (None: rollout.steps)")
    batch_size: int = _f(64, "rows per generation call")

    def __post_init__(self) -> None:
        for name in ("limit", "gen_length", "block_length", "steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"train.eval.{name} must be >= 1, got {value}")
        if self.batch_size < 1:
            raise ValueError(f"train.eval.batch_size must be >= 1, got {self.batch_size}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One RL run: model, task, algorithm, rollouts, batch geometry, optimisation and bookkeeping."""

    model: str = _f("builtin:tiny", "checkpoint dir, file://, hub id, or builtin:tiny")
    tokenizer: str | None = _f(None, "tokenizer dir (None: same as model)")
    task: str = _f("countdown", "task name (gsm8k | math500 | countdown | sudoku, or one a plugin registers)")
    plugins: list[str] = dataclasses.field(
        default_factory=list,
        metadata={"help": "Python modules imported before the task is looked up; a module adds tasks with "
                          "@spg_lib.tasks.registry.register_task (e.g. [mypkg.tasks])"})
    train_data: str | None = _f(None, "training split source (path, s3://, hub id; None: task default)")
    prompt_style: str = _f("paper", "paper (the official training prompts) | compact (short prompts for tiny "
                                    "character-level models)")
    reward_mode: str = _f("fixed", "fixed | faithful reward functions (§6)")
    max_prompt_length: int = _f(200, "prompt tokens kept (left truncation; Sudoku 1500)")
    algo: AlgoConfig = dataclasses.field(default_factory=AlgoConfig)
    rollout: RolloutConfig = dataclasses.field(default_factory=RolloutConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    lora: LoRASettings = dataclasses.field(default_factory=LoRASettings)
    num_generations: int = _f(6, "g, completions per prompt (6)")
    prompts_per_step: int = _f(16, "prompts per rollout across all processes (16 → 96 completions)")
    grad_accum: int = _f(2, "micro-batches per optimizer step per process (2; Sudoku 4)")
    max_steps: int = _f(100, "optimizer steps (paper: 6000 GSM8K/Countdown, 4000 MATH, 2500 Sudoku)")
    seed: int = _f(42, "seed of data order, rollouts and masks (42)")
    out_dir: str = _f("runs/train", "output directory (checkpoints/, metrics.jsonl, final/)")
    checkpoint_every: int = _f(0, "optimizer steps between checkpoints (0: only the final one)")
    keep_checkpoints: int = _f(2, "checkpoints kept")
    max_bad_steps: int = _f(5, "consecutive non-finite losses/gradients tolerated before the run stops")
    tracking_uri: str | None = _f(None, "MLflow tracking URI (None: $MLFLOW_TRACKING_URI if set, else local JSONL "
                                         "only; metrics always go to out_dir/metrics.jsonl too)")
    experiment: str = _f("spg", "MLflow experiment name")
    chunk_size: int = _f(256, "positions per output-head chunk in the likelihood")
    dtype: str = _f("float32", "float32 | bfloat16 (GPU)")
    eval: TrainEvalConfig = dataclasses.field(default_factory=TrainEvalConfig)

    def __post_init__(self) -> None:
        if self.prompt_style not in ("paper", "compact"):
            raise ValueError(f"train.prompt_style must be paper or compact, got {self.prompt_style!r}")
        if self.reward_mode not in ("fixed", "faithful"):
            raise ValueError(f"train.reward_mode must be fixed or faithful, got {self.reward_mode!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"train.dtype must be float32 or bfloat16, got {self.dtype!r}")
        for name in ("num_generations", "prompts_per_step", "grad_accum", "max_steps", "max_prompt_length",
                     "keep_checkpoints", "max_bad_steps", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lora.load_in_4bit and not self.lora.enabled:
            raise ValueError("train.lora.load_in_4bit needs train.lora.enabled: a 4-bit base is frozen, only a LoRA "
                             "adapter on it can train")
        if self.lora.load_in_4bit and self.model == "builtin:tiny":
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
