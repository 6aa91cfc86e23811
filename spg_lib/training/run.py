"""Run-level entry points behind `spg sft` and `spg train`: load, train, save, evaluate.

These are the I/O edges around the pure pieces (``sft``, ``trainer``): they read configuration,
load data and models, write checkpoints atomically and return plain dicts of results.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import time
from pathlib import Path
from typing import Any

import torch

from spg_lib.algos import AlgoConfig
from spg_lib.config import param
from spg_lib.io import BUILTIN_TINY, atomic_dir, atomic_write_json, read_json
from spg_lib.tasks.base import PromptStyle
from spg_lib.tasks.evaluate import EvalConfig
from spg_lib.training.config import TrainConfig
from spg_lib.training.sft import SFTConfig, build_sft_batch, train_sft
from spg_lib.training.teacher_defects import apply_teacher_defect, check_teacher_defect


@dataclasses.dataclass(frozen=True)
class SFTRunConfig:
    """`spg sft`: masked-diffusion SFT of a (tiny) model on a task's training split."""

    model: str = param(BUILTIN_TINY, "starting checkpoint (dir, file://, hub id, builtin:tiny)")
    task: str = param("sudoku", "task name (or one a plugin registers)")
    plugins: list[str] = param(help="Python modules imported before the task is looked up (as train.plugins)",
                               factory=list)
    train_data: str = param("data/sudoku/train.jsonl", "training split source (path, s3://, hub id)")
    n_train: int | None = param(None, "only the first N training examples (None: all)")
    prompt_style: PromptStyle = param("compact", "paper | compact prompts (the task's)")
    response_length: int | None = param(None, "pad responses to this many tokens, e.g. the RL canvas "
                                              "train.algo.gen_length (None: the longest response)")
    out_dir: str = param("runs/sft", "writes model/ here")
    teacher_defect: str = param("none", "a systematic error of the task's teacher written into the demonstrations "
                                        "(none, or a defect the task defines, e.g. Sudoku's off_by_one)")
    teacher_defect_fraction: float = param(0.0, "share of the demonstrations that carry the defect")
    sft: SFTConfig = param(help="SFT optimisation", factory=SFTConfig)

    def __post_init__(self) -> None:
        check_teacher_defect(self.teacher_defect, self.teacher_defect_fraction)  # the task's list: at run_sft
        if self.n_train is not None and self.n_train < 1:
            raise ValueError(f"sft.n_train must be >= 1, got {self.n_train}")


def prompt_function(task, style: str, *, evaluation: bool = False):
    """example -> user-message content for ``style`` (the task's `Task.prompt`)."""
    return functools.partial(task.prompt, style=style, evaluation=evaluation)


def load_examples(task, source: str, split: str = "train", limit: int | None = None) -> list[dict]:
    examples = task.load_split(source, split)
    if not examples:
        raise ValueError(f"{source}: no {split} examples")
    return examples[:limit] if limit else examples


def save_model_dir(model, tokenizer, out: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """save_pretrained model + tokenizer into ``out`` atomically (tmp dir, then rename)."""
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if extra:
            atomic_write_json(tmp / "spg_run.json", extra, default=str)
    return Path(out)


def run_sft(cfg: SFTRunConfig, log=print) -> dict[str, Any]:
    from spg_lib.models import load_model, load_tokenizer
    from spg_lib.tasks.registry import get_task

    import_plugins(cfg.plugins, "sft.plugins")
    task = get_task(cfg.task)
    examples = load_examples(task, cfg.train_data, "train", cfg.n_train)
    demos = apply_teacher_defect(task, examples, cfg.teacher_defect, cfg.teacher_defect_fraction, cfg.sft.seed)
    prompt = prompt_function(task, cfg.prompt_style)
    prompts, responses = [prompt(e) for e in examples], [task.sft_response(e) for e in demos]  # before loading
    model, tokenizer = load_model(cfg.model), load_tokenizer(cfg.model)
    ids, att, resp = build_sft_batch(tokenizer, prompts, responses, response_length=cfg.response_length)
    log(f"sft: {len(examples)} examples, sequence length {ids.shape[1]}, {cfg.sft.steps} steps")
    history = train_sft(model, ids, att, resp, int(tokenizer.mask_token_id), cfg.sft)  # progress: spg_lib.progress
    out = save_model_dir(model, tokenizer, Path(cfg.out_dir) / "model",
                         {"sft": dataclasses.asdict(cfg), "history": history})
    return {"model_dir": str(out), "history": history}


def wrap_lora(model, lora) -> torch.nn.Module:
    """Attach a LoRA adapter (peft) when enabled; otherwise every parameter trains."""
    if not lora.enabled:
        return model
    from peft import LoraConfig, get_peft_model

    # Expand short names to full paths inside the transformer blocks: LLaDA calls both the MLP down
    # projection and the output head `ff_out`, and the head must stay frozen (the chunked likelihood reads
    # its weight directly). Note the official SPG list names Llama modules (o_proj, gate_proj, down_proj):
    # on LLaDA only q/k/v/up_proj of it match.
    names = [n for n, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)]
    short = {n.rsplit(".", 1)[-1] for n in names}
    missing = [t for t in lora.target_modules if t not in short]
    if missing:
        raise ValueError(f"train.lora.target_modules {missing} not found in the model (linear layers: "
                         f"{sorted(short)})")
    targets = [n for n in names if n.rsplit(".", 1)[-1] in lora.target_modules and ".blocks." in f".{n}"]
    return get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                            target_modules=targets))


def check_4bit_support(cfg: TrainConfig) -> None:
    """Fail before anything loads when ``train.lora.load_in_4bit`` cannot work here (no CUDA, no bitsandbytes).

    Raises:
        ValueError: naming ``train.lora.load_in_4bit`` and what is missing.
    """
    if not cfg.lora.load_in_4bit:
        return
    missing = []
    if not torch.cuda.is_available():
        missing.append("no CUDA GPU is visible")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("bitsandbytes is not installed")
    if missing:
        raise ValueError(f"train.lora.load_in_4bit is true, but {' and '.join(missing)}: the NF4 base (QLoRA) needs "
                         "a CUDA GPU with bitsandbytes; set train.lora.load_in_4bit false to train an unquantized base")


def load_base_model(cfg: TrainConfig) -> torch.nn.Module:
    """The base model of ``cfg``: ``cfg.dtype`` weights, or an NF4 base (double quant, bf16 compute,
    docs/algorithms.md#official-hyper-parameters) on this
    process's GPU when ``train.lora.load_in_4bit``."""
    from spg_lib.models import load_model

    if not cfg.lora.load_in_4bit:
        return load_model(cfg.model, dtype=torch.bfloat16 if cfg.dtype == "bfloat16" else None)
    check_4bit_support(cfg)
    from accelerate import PartialState
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    return load_model(cfg.model, dtype=torch.bfloat16, quantization_config=quant,
                      device=f"cuda:{PartialState().local_process_index}")


def import_plugins(names: list[str], field: str = "train.plugins") -> None:
    """Import the modules listed in `field` (they register extra tasks with ``register_task``)."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"{field}: cannot import {name!r} ({exc})") from exc


def final_model(trainer, cfg: TrainConfig) -> torch.nn.Module | None:
    """The trained model as one plain module on the main process (None elsewhere); LoRA merged into the base.

    Every process must call it: under FSDP / ZeRO-3 the weights are gathered (``Accelerator.get_state_dict``) and
    loaded into a fresh CPU copy of the base, since the prepared model holds only shards.
    """
    acc = trainer.acc
    if trainer.sharded_params:
        full = acc.get_state_dict(trainer.model)
        if not acc.is_main_process:
            return None
        from spg_lib.models import load_model

        model = wrap_lora(load_model(cfg.model, dtype=torch.bfloat16 if cfg.dtype == "bfloat16" else None), cfg.lora)
        missing, unexpected = model.load_state_dict(full, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"gathered weights do not match the model (missing {missing[:3]}, unexpected "
                               f"{unexpected[:3]})")
    else:
        if not acc.is_main_process:
            return None
        model = acc.unwrap_model(trainer.model)
    if cfg.lora.enabled:
        model = model.merge_and_unload()  # a plain checkpoint in the official layout
    return model


def evaluate_for_table(model, tokenizer, task, ev: EvalConfig) -> dict[str, Any]:
    """Greedy accuracy of ``model`` on the test split with the ``evaluate`` section's protocol (main process)."""
    from spg_lib.tasks.evaluate import evaluate_model

    examples = load_examples(task, ev.data or task.default_source("test"), "test", ev.limit)
    _, metrics = evaluate_model(model, tokenizer, task, examples, dataclasses.replace(ev, progress=False))
    return metrics.as_dict()


def before_after_table(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The table `spg train` prints: accuracy / exact match / completion length, before and after."""
    rows = [("accuracy (%)", "accuracy", "{:.1f}"), ("exact match (%)", "exact_match", "{:.1f}"),
            ("mean completion tokens", "mean_completion_tokens", "{:.1f}")]
    lines = [f"{'':24s}{'before':>10s}{'after':>10s}{'change':>10s}"]
    for label, key, fmt in rows:
        b, a = before.get(key), after.get(key)
        if b is None or a is None:
            continue
        lines.append(f"{label:24s}{fmt.format(b):>10s}{fmt.format(a):>10s}{a - b:>+10.1f}")
    lines.append(f"({after['task']} test split, n={after['n']}, gen_length {after['gen_length']}, "
                 f"steps {after['steps']}, block {after['block_length']}, greedy)")
    return "\n".join(lines)


def run_train(cfg: TrainConfig, *, evaluation: EvalConfig | None = None, resume: bool = False, accelerator=None,
              progress: bool = True, examples: list[dict] | None = None, task=None) -> dict[str, Any]:
    """Load model/tokenizer/data, run the RL trainer, save the final model; returns the metric history.

    ``train.plugins`` are imported first, so ``train.task`` may name a task registered by one of them. With
    ``train.before_after_eval`` the starting and final models are evaluated with ``evaluation`` (the pipeline's
    ``evaluate`` section: the same protocol as the evaluate stage; default ``EvalConfig()`` on the train task).
    """
    from spg_lib.models import load_tokenizer
    from spg_lib.tasks.registry import get_task
    from spg_lib.training.trainer import Trainer

    check_4bit_support(cfg)  # before any data or weights load
    import_plugins(cfg.plugins)
    task = task or get_task(cfg.task)
    if examples is None:
        examples = load_examples(task, cfg.train_data or task.default_source("train"), "train")
    model = wrap_lora(load_base_model(cfg), cfg.lora)
    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model)
    start = time.perf_counter()
    trainer = Trainer(cfg, model, tokenizer, examples, task, accelerator=accelerator,
                      prompt_fn=prompt_function(task, cfg.prompt_style))
    out = Path(cfg.out_dir)
    before = None
    if cfg.before_after_eval:
        evaluation = evaluation or EvalConfig(task=cfg.task)
        if evaluation.task != cfg.task:
            raise ValueError(f"train.before_after_eval: evaluate.task {evaluation.task!r} is not train.task "
                             f"{cfg.task!r}")
    if cfg.before_after_eval and trainer.acc.is_main_process:
        before_path = out / "eval_before.json"
        if resume and before_path.exists():  # the starting model of a resumed run was evaluated already
            before = read_json(before_path, what="evaluation of the starting model")
        else:
            before = evaluate_for_table(trainer.acc.unwrap_model(trainer.model), tokenizer, task, evaluation)
            atomic_write_json(before_path, before)
    trainer.acc.wait_for_everyone()
    history = trainer.train(resume=resume, progress=progress)
    model = final_model(trainer, cfg)
    final = after = None
    if model is not None:
        final = str(save_model_dir(model, tokenizer, out / "final",
                                   {"train": dataclasses.asdict(cfg), "steps": trainer.step}))
        if before is not None:
            after = evaluate_for_table(model, tokenizer, task, evaluation)
            atomic_write_json(out / "eval_after.json", after)
            print(before_after_table(before, after))
        atomic_write_json(out / "result.json", {
            "steps": trainer.step, "skipped_steps": trainer.skipped_steps, "final_model": final,
            "wall_time_s": time.perf_counter() - start, "resumed": resume,
            "accuracy_before": before and before["accuracy"], "accuracy_after": after and after["accuracy"]})
    trainer.acc.wait_for_everyone()
    return {"history": history, "final_model": final, "skipped_steps": trainer.skipped_steps,
            "eval_before": before, "eval_after": after}


__all__ = ["AlgoConfig", "SFTRunConfig", "TrainConfig", "before_after_table", "check_4bit_support",
           "evaluate_for_table", "final_model", "import_plugins",
           "load_base_model", "load_examples", "prompt_function", "run_sft", "run_train", "save_model_dir",
           "wrap_lora"]
