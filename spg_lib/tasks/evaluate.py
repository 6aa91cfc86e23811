"""Evaluate a masked diffusion LM on a task: greedy block decoding, scoring, metrics
(docs/algorithms.md#evaluation-protocol).

Pipeline: examples → evaluation prompt → chat template (generation prompt) + ``<reasoning>``
prefill → tokenise → batches of similar length (longest first), left-padded with an attention
mask (docs/faithful-vs-fixed.md#official-quirks Q13: the official eval passed none) → `spg_lib.decoding.generate`
(temperature 0,
low-confidence remasking) → decode the last ``gen_length`` tokens with special tokens kept →
`Task.score` → ``generations.jsonl`` + ``metrics.json`` (`spg_lib.tasks.metrics.EvalMetrics`) written
atomically. Greedy by default (temperature 0); a temperature > 0 or random remasking draws from a
``torch.Generator`` seeded with ``seed``.

Note: the official eval sets ``steps = gen_length / 2`` whatever the CLI says; here `steps` is
used as given (pass gen_length/2 to reproduce).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any

from spg_lib.config import param
from spg_lib.decoding import REMASKING_MODES, CacheMode, GumbelDtype, Remasking, Unmasking, check_engine_config
from spg_lib.io import atomic_write_json, atomic_write_jsonl
from spg_lib.progress import Progress
from spg_lib.tasks.base import Mode, PromptStyle, check_mode, check_prompt_style
from spg_lib.tasks.metrics import EvalMetrics, EvalProtocol, examples_hash
from spg_lib.tasks.prompts import EVAL_REASONING_PREFILL
from spg_lib.tasks.registry import get_task

__all__ = ["EvalConfig", "build_prompt", "encode_prompts", "evaluate", "evaluate_model"]


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation run: the ``evaluate:`` section (defaults = the paper's 256-token setting)."""

    model: str | None = param(None, "checkpoint to evaluate: directory, file://, hub id, models:/ or builtin:tiny "
                                    "(required)")
    task: str | None = param(None, "task name: gsm8k | math500 | countdown | sudoku, or one a plugin registers "
                                   "(required)")
    out_dir: str | None = param(None, "output directory: generations.jsonl + metrics.json (required)")
    data: str | None = param(None, "test split source: path, s3:// or hub id (None: the task's default)")
    gen_length: int = param(256, "tokens generated per example")
    steps: int = param(128, "denoising steps for the whole completion (the official eval: gen_length / 2)")
    block_length: int = param(32, "semi-autoregressive block length")
    temperature: float = param(0.0, "Gumbel-max sampling temperature (0: greedy, the paper's evaluation)")
    remasking: Remasking = param("low_confidence", "which masked positions are decoded first: low_confidence "
                                                   "(the most confident) | random")
    seed: int = param(0, "seed of the sampling noise (used only with temperature > 0 or remasking random)")
    # the sampler's two faithful flags, as train.rollout's (docs/faithful-vs-fixed.md, "Sampler flags")
    redecode_earlier_masks: bool | None = param(None, "re-decode earlier blocks' leftover [MASK] (None: faithful mode)")
    gumbel_dtype: GumbelDtype | None = param(None, "noise precision, temperature > 0 only (None: float32 in faithful "
                                                   "mode, else float64)")
    cache: CacheMode = param("none", "none (exact) | prefix | dual: block KV cache of the sampler, approximate "
                                     "(docs/decoding.md#cache-modes-threshold-unmasking-early-stop)")
    unmasking: Unmasking = param("schedule", "schedule (fixed transfers per step, exact) | threshold (every masked "
                                             "token with confidence > threshold, >= 1 per step)")
    threshold: float = param(0.9, "confidence threshold of unmasking: threshold")
    early_stop: bool = param(False, "rows with EOS among their committed tokens stop being decoded (rest = EOS)")
    compile: bool = param(False, "torch.compile the KV-cache forwards (cache prefix | dual; compiled once per "
                                 "process, float rounding may differ from eager)")
    batch_size: int = param(8, "prompts per generation call")
    limit: int | None = param(None, "evaluate only the first N test examples (None: all)")
    mode: Mode = param("fixed", "fixed (defects of the official parsers corrected) | faithful (the official eval "
                                "code: its parsers and, unless set, its sampler flags)")
    prompt_style: PromptStyle = param("paper", "paper (the task's evaluation prompt, <reasoning> prefill) | "
                                               "compact (the short prompts of tiny CPU models)")
    device: str | None = param(None, "cuda | cpu (None: cuda if available)")
    dtype: str | None = param(None, "model dtype (None: bfloat16 on GPU, float32 on CPU)")
    add_special_tokens: bool = param(True, "tokenise paper prompts with the tokenizer's special tokens, as the "
                                           "official eval does")
    progress: bool = param(True, "show progress while generating")

    def __post_init__(self) -> None:
        faithful = self.mode == "faithful"
        if self.redecode_earlier_masks is None:  # the sampler's faithful flags follow the mode unless set
            object.__setattr__(self, "redecode_earlier_masks", faithful)
        if self.gumbel_dtype is None:
            object.__setattr__(self, "gumbel_dtype", "float32" if faithful else "float64")
        for name in ("gen_length", "steps", "block_length", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"evaluate.{name} must be a positive int, got {value!r}")
        if self.gen_length % self.block_length:
            raise ValueError(f"evaluate.gen_length ({self.gen_length}) must be a multiple of block_length "
                             f"({self.block_length})")
        n_blocks = self.gen_length // self.block_length
        if self.steps % n_blocks:
            raise ValueError(f"evaluate.steps ({self.steps}) must be a multiple of the number of blocks ({n_blocks})")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"evaluate.limit must be >= 1, got {self.limit}")
        if self.temperature < 0:
            raise ValueError(f"evaluate.temperature must be >= 0, got {self.temperature}")
        if self.remasking not in REMASKING_MODES:
            raise ValueError(f"evaluate.remasking must be one of {', '.join(REMASKING_MODES)}; got "
                             f"{self.remasking!r}")
        check_mode(self.mode)
        check_prompt_style(self.prompt_style, "evaluate.prompt_style")
        check_engine_config(self, "evaluate")

    def require(self) -> tuple[str, str, str]:
        """(model, task, out_dir), which have no default; ValueError naming the first one missing."""
        for name, what in (("model", "the checkpoint to evaluate"), ("task", "the task name"),
                           ("out_dir", "where generations.jsonl and metrics.json go")):
            if getattr(self, name) is None:
                raise ValueError(f"evaluate.{name} is required ({what})")
        return self.model, self.task, self.out_dir  # type: ignore[return-value]


def build_prompt(tokenizer: Any, content: str) -> str:
    """Chat-templated single user turn with generation prompt, then the ``<reasoning>`` prefill."""
    messages = [{"role": "user", "content": content}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return text + EVAL_REASONING_PREFILL


def _resolve_device(device: str | None):
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def encode_prompts(tokenizer: Any, task: Any, examples: list[dict], prompt_style: str = "paper",
                   add_special_tokens: bool = True) -> list[list[int]]:
    """Token ids of each example's evaluation prompt (`Task.prompt` with ``evaluation=True``).

    ``paper``: the task's evaluation prompt, chat template, ``<reasoning>`` prefill, tokenizer special tokens
    as the official eval. ``compact``: the task's compact prompt, chat template only, tokenised exactly as in
    training (no extra special tokens).
    """
    texts = [task.prompt(ex, check_prompt_style(prompt_style), evaluation=True) for ex in examples]
    if prompt_style == "compact":
        templated = [tokenizer.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                                   tokenize=False) for t in texts]
        return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in templated]
    return [tokenizer(build_prompt(tokenizer, t), add_special_tokens=add_special_tokens)["input_ids"] for t in texts]


def evaluate_model(
    model: Any, tokenizer: Any, task: Any, examples: list[dict], cfg: EvalConfig, stats: dict | None = None,
) -> tuple[list[dict[str, Any]], EvalMetrics]:
    """Block decoding of every example with an in-memory model, then the task's scorer.

    ``stats``: optional dict that receives the sampler's counted work over every generate call (token_forwards,
    forwards, steps: :func:`spg_lib.decoding.generate`).

    Decoding, scoring and prompt settings come from ``cfg`` (its model, task, data and out_dir are not read).
    Returns (records, metrics): one record per example (completion, extraction, correctness) and the
    `EvalMetrics` (protocol, accuracy in %, completion lengths, wall time, tokens/s). The model's train/eval
    mode is restored afterwards, so the trainer can call this before and after training.

    Raises:
        ValueError: `examples` is empty.
    """
    import torch

    from spg_lib.decoding import completion_mask, generate

    if not examples:
        raise ValueError(f"no {task.name} test examples to evaluate")
    device = next(model.parameters()).device
    config = getattr(model, "config", None)
    mask_id = int(config.mask_token_id) if getattr(config, "mask_token_id", None) is not None \
        else int(tokenizer.mask_token_id)
    eos_id = int(tokenizer.eos_token_id)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else int(config.pad_token_id)
    # drawn from only when sampling (temperature > 0) or remasking at random; greedy decoding draws nothing
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    gen_length, batch_size = cfg.gen_length, cfg.batch_size

    encoded = encode_prompts(tokenizer, task, examples, cfg.prompt_style, cfg.add_special_tokens)
    # longest first: similar lengths share a batch (less padding), and OOM shows up at once
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))

    completions: list[str] = [""] * len(examples)
    lengths: list[int] = [0] * len(examples)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        with torch.inference_mode(), Progress(len(order), f"eval {task.name} (examples)", enabled=cfg.progress) as bar:
            for b in range(0, len(order), batch_size):
                idx = order[b : b + batch_size]
                width = max(len(encoded[i]) for i in idx)
                ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
                attn = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    seq = encoded[i]
                    ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
                    attn[row, width - len(seq) :] = 1
                out = generate(
                    model, ids.to(device), attn.to(device),
                    gen_length=gen_length, block_length=cfg.block_length, steps=cfg.steps,
                    mask_id=mask_id, temperature=cfg.temperature, remasking=cfg.remasking,
                    redecode_earlier_masks=cfg.redecode_earlier_masks, gumbel_dtype=cfg.gumbel_dtype,
                    generator=generator, cache=cfg.cache, unmasking=cfg.unmasking, threshold=cfg.threshold,
                    early_stop=cfg.early_stop, eos_id=eos_id, compile=cfg.compile, stats=stats,
                )
                gen = out[:, -gen_length:].cpu()
                texts = tokenizer.batch_decode(gen, skip_special_tokens=False)
                lens = completion_mask(gen, eos_id).sum(dim=1).tolist()
                for row, i in enumerate(idx):
                    completions[i] = texts[row]
                    lengths[i] = int(lens[row])
                bar.update(b + len(idx))
    finally:
        model.train(was_training)
    wall = time.perf_counter() - start

    records = []
    correct_sum = total_sum = 0.0
    for ex, text, n_tok in zip(examples, completions, lengths):
        gt = task.ground_truth(ex)
        res = task.score(text, gt, mode=cfg.mode)
        correct_sum += res.correct
        total_sum += res.total
        records.append({
            "question": task.question(ex),
            "completion": text,
            "ground_truth": gt,
            "extracted": res.extracted if isinstance(res.extracted, (str, float, type(None))) else str(res.extracted),
            "correct": res.is_correct,
            "score": [res.correct, res.total],
            "completion_tokens": n_tok,
        })
    n = len(records)
    protocol = EvalProtocol(task=task.name, data_hash=examples_hash(examples), n=n, prompt_style=cfg.prompt_style,
                            mode=cfg.mode, gen_length=gen_length, block_length=cfg.block_length, steps=cfg.steps,
                            temperature=float(cfg.temperature), remasking=cfg.remasking,
                            redecode_earlier_masks=bool(cfg.redecode_earlier_masks), cache=cfg.cache,
                            unmasking=cfg.unmasking,
                            threshold=float(cfg.threshold) if cfg.unmasking == "threshold" else 0.0,
                            early_stop=bool(cfg.early_stop))
    metrics = EvalMetrics(
        protocol=protocol,
        accuracy=100.0 * correct_sum / total_sum if total_sum else 0.0,
        exact_match=100.0 * sum(r["correct"] for r in records) / n,
        mean_completion_tokens=statistics.fmean(lengths),
        median_completion_tokens=float(statistics.median(lengths)),
        batch_size=batch_size,
        wall_time_s=wall,
        tokens_per_s=n * gen_length / wall if wall > 0 else 0.0,
        device=str(device),
    )
    return records, metrics


def evaluate(cfg: EvalConfig) -> EvalMetrics:
    """Run the evaluation described by `cfg`; returns its metrics (also written to ``out_dir/metrics.json``).

    Raises:
        ValueError: a required setting (model, task, out_dir) is missing, or the test split is empty.
    """
    from spg_lib.models import load_model, load_tokenizer

    model_uri, task_name, out_dir = cfg.require()
    task = get_task(task_name)
    source = cfg.data or task.default_source("test")
    examples = task.load_split(source, "test")
    if cfg.limit is not None:
        examples = examples[: cfg.limit]

    device = _resolve_device(cfg.device)
    dtype = cfg.dtype or ("bfloat16" if device.type == "cuda" else None)
    model = load_model(model_uri, dtype=dtype, device=device)
    tokenizer = load_tokenizer(model_uri)
    records, metrics = evaluate_model(model, tokenizer, task, examples, cfg)
    metrics = dataclasses.replace(metrics, model=model_uri, data=source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(out / "generations.jsonl", records)
    atomic_write_json(out / "metrics.json", metrics.as_dict())
    return metrics
