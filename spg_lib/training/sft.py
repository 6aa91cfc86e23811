"""Masked-diffusion supervised fine-tuning (the d1 SFT of docs/algorithms.md#d1-sft).

Per sequence: t ~ U(0, 1), t' = (1 − ε)·t + ε with ε = 1e-3; every response token is masked
independently with probability t' (the prompt stays clean); the loss is

    L = Σ_{masked k} CE(x_k | z) / t'  /  Σ_b (number of response tokens of b)

i.e. the LLaDA/MDLM ELBO with the linear schedule, normalised by response tokens. Used to bootstrap
a starting checkpoint (the tiny CPU default trains one from scratch).

Shapes: B batch, T = prompt + response length, V vocabulary.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from spg_lib.progress import Progress

EPS_T = 1e-3  # d1 SFT: t' = (1 − 1e-3)·t + 1e-3 keeps 1/t' bounded


@dataclasses.dataclass(frozen=True)
class SFTConfig:
    """Hyper-parameters of the masked-diffusion SFT bootstrap."""

    steps: int = dataclasses.field(default=300, metadata={"help": "optimizer steps"})
    batch_size: int = dataclasses.field(default=32, metadata={"help": "sequences per step"})
    lr: float = dataclasses.field(default=1e-3, metadata={"help": "peak AdamW learning rate (cosine decay)"})
    weight_decay: float = 0.0
    warmup_steps: int = 20
    max_grad_norm: float = 1.0
    seed: int = 0
    log_every: int = 20
    loss_weighting: str = dataclasses.field(default="elbo", metadata={
        "help": "elbo (d1/LLaDA: Σ CE/t' over response tokens, the ELBO) | flat (mean CE over masked tokens: "
                "lower variance; on the tiny Sudoku demo it leaves the uniform-digit plateau within ~300 steps, "
                "where the 1/t' weighting had not)"})

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"sft.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"sft.lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"sft.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.loss_weighting not in ("elbo", "flat"):
            raise ValueError(f"sft.loss_weighting must be elbo or flat, got {self.loss_weighting!r}")


def sft_mask(
    response_mask: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the d1 SFT noise.

    Args:
        response_mask: bool [B, T], True on response tokens (never on prompt or padding).
        generator: explicit RNG.
    Returns:
        masked: bool [B, T] (subset of response_mask), t: float [B] (the per-sequence t').
    """
    B, T = response_mask.shape
    t = torch.rand(B, generator=generator, device=response_mask.device)  # [B]
    t = (1 - EPS_T) * t + EPS_T
    u = torch.rand(B, T, generator=generator, device=response_mask.device)  # [B, T]
    masked = (u < t[:, None]) & response_mask
    return masked, t


def sft_loss(
    logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor, t: torch.Tensor, response_mask: torch.Tensor
) -> torch.Tensor:
    """Σ_masked CE/t' over Σ response tokens.

    Args:
        logits: [B, T, V]; targets: long [B, T]; masked, response_mask: bool [B, T]; t: [B].
    """
    ce = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # [B, T]
    weighted = ce * masked / t[:, None]
    return weighted.sum() / response_mask.sum().clamp(min=1)


def sft_loss_flat(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Σ_masked CE / number of masked tokens (no 1/t' weight).

    Args:
        logits: [B, T, V]; targets: long [B, T]; masked: bool [B, T].
    """
    ce = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # [B, T]
    return (ce * masked).sum() / masked.sum().clamp(min=1)


def _lr_at(step: int, cfg: SFTConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train_sft(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_mask: torch.Tensor,
    mask_id: int,
    cfg: SFTConfig,
    log: Callable[[dict], None] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Train `model` in place on a fixed tokenised set (left-padded prompt + response + EOS/pad).

    Args:
        input_ids: long [N, T]; attention_mask: [N, T] (1 = real token); response_mask: bool [N, T].
        mask_id: the mask token id.
        log: called with each log step's metrics (every ``cfg.log_every`` steps).
        progress: a bar on a terminal, else a line every ``cfg.log_every`` steps (`spg_lib.progress`).
    Returns:
        the per-log-step metrics.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    model.train()
    history: list[dict] = []
    n = input_ids.shape[0]
    t0 = time.perf_counter()
    running = 0.0
    reporter = Progress(total=cfg.steps, desc="sft", every=cfg.log_every, enabled=progress)
    for step in range(cfg.steps):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        ids, att, resp = input_ids[idx], attention_mask[idx], response_mask[idx]
        masked, t = sft_mask(resp, gen)
        noisy = torch.where(masked, torch.full_like(ids, mask_id), ids)
        logits = model(noisy, attention_mask=att).logits
        if cfg.loss_weighting == "flat":
            loss = sft_loss_flat(logits, ids, masked)
        else:
            loss = sft_loss(logits, ids, masked, t, resp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        opt.step()
        running += loss.item()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            k = (step % cfg.log_every) + 1
            row = {"step": step + 1, "loss": running / k, "grad_norm": float(grad_norm),
                   "lr": _lr_at(step, cfg), "elapsed_s": time.perf_counter() - t0}
            running = 0.0
            history.append(row)
            reporter.update(step + 1, loss=row["loss"])
            if log:
                log(row)
        else:
            reporter.update(step + 1)
    reporter.close()
    model.eval()
    return history


def build_sft_batch(
    tokenizer, prompts: Sequence[str], responses: Sequence[str], max_length: int | None = None,
    response_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokenise chat prompts + responses (+ EOS) into left-padded tensors.

    ``response_length`` pads every response region to that many tokens (the rollout canvas
    ``gen_length``), so the model learns what fills the canvas after the end of turn.

    Returns:
        input_ids long [N, T], attention_mask long [N, T], response_mask bool [N, T]
        (the response includes its EOS; the trailing pad up to a common length is also
        part of the response, as in d1/LLaDA SFT, so the model learns to emit EOS padding).
    """
    if len(prompts) != len(responses) or not prompts:
        raise ValueError("build_sft_batch: prompts and responses must be non-empty and of equal length")
    eos = tokenizer.eos_token
    rows_p, rows_r = [], []
    for p, r in zip(prompts, responses):
        text_p = tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                               tokenize=False)
        rows_p.append(tokenizer(text_p, add_special_tokens=False).input_ids)
        rows_r.append(tokenizer(r + eos, add_special_tokens=False).input_ids)
    P = max(len(x) for x in rows_p)
    R = max(len(x) for x in rows_r)
    if response_length is not None:
        if R > response_length:
            raise ValueError(f"build_sft_batch: a response has {R} tokens > response_length {response_length}")
        R = response_length
    if max_length is not None and P + R > max_length:
        raise ValueError(f"build_sft_batch: longest prompt+response is {P + R} tokens > max_length {max_length}")
    pad = tokenizer.pad_token_id
    N = len(rows_p)
    ids = torch.full((N, P + R), pad, dtype=torch.long)
    att = torch.zeros((N, P + R), dtype=torch.long)
    resp = torch.zeros((N, P + R), dtype=torch.bool)
    for i, (p, r) in enumerate(zip(rows_p, rows_r)):
        ids[i, P - len(p):P] = torch.tensor(p)
        ids[i, P:P + len(r)] = torch.tensor(r)
        ids[i, P + len(r):] = pad  # LLaDA fills the canvas after <|eot_id|> with <|endoftext|> padding
        att[i, P - len(p):] = 1
        resp[i, P:] = True
    return ids, att, resp
