"""The RL trainer: one readable accelerate loop (algorithms.md §4.5).

    cycle (one rollout, μ optimizer steps):
      1. take the next `prompts_per_step` prompts; this process owns a contiguous slice of the
         prompts × g rows, split into `grad_accum` micro-batches
      2. generate the completions with the block sampler (no grad, eval mode)
      3. score them with the task's rewards; gather rewards from every process; advantages per group
      4. draw μ mask seeds; D1/UniGRPO/ESPO: old (and reference) estimates for every inner iteration
      5. for n in 0..μ-1: for each micro-batch: estimate under the current weights (fresh masks from the
         selected seed), loss / grad_accum, backward; then clip, AdamW step, LR schedule

Randomness never touches global RNGs: every generator is seeded from (seed, rollout, global
micro-batch, ...) so results do not depend on how many processes share the work (a 2-process run
equals a 1-process run with the same global batch and twice the gradient accumulation).
Run: ``spg train --config params.yaml`` or ``accelerate launch -m spg_lib.cli train --config ...``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from pathlib import Path
from typing import Any

import torch

from spg_lib.algos import compute_advantages, mask_generator, mask_seed_index
from spg_lib.config import to_dict
from spg_lib.decoding import completion_mask, generate
from spg_lib.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from spg_lib.training.config import TrainConfig
from spg_lib.training.objective import MicroBatch, estimate, method_loss, needs_old, needs_ref
from spg_lib.training.tracking import MetricsLogger


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from a tuple (stable across processes and Python runs)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _gen(*parts: int | str, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*parts))
    return g


class NonFiniteError(RuntimeError):
    """Too many consecutive optimizer steps had a non-finite loss or gradient."""


@dataclasses.dataclass
class Rollout:
    """A scored rollout for this process: a list of micro-batches plus logging figures."""

    micro_batches: list[MicroBatch]
    metrics: dict[str, float]
    old: list[list[Any]] | None = None  # [μ][micro-batch] old estimates
    ref: list[list[Any]] | None = None


class Trainer:
    """Owns the model, optimizer and loop state; ``train()`` runs to ``cfg.max_steps``."""

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, tokenizer, examples: list[dict], task,
                 accelerator=None, prompt_fn=None):
        from accelerate import Accelerator

        self.cfg = cfg
        self.acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        cfg.check_world(self.acc.num_processes)
        self.task = task
        self.tokenizer = tokenizer
        self.examples = examples
        self.prompt_fn = prompt_fn or task.train_prompt
        if not examples:
            raise ValueError("Trainer: the training set is empty")
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)
        self.mask_id = int(tokenizer.mask_token_id)
        self.eos_id = int(tokenizer.eos_token_id)
        params = [p for p in model.parameters() if p.requires_grad]
        o = cfg.optim
        opt = torch.optim.AdamW(params, lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / o.warmup_steps)
                                                  if o.warmup_steps else 1.0)
        self.model, self.opt = self.acc.prepare(model, opt)
        self.sched = sched
        self.params = params
        self.step = 0  # optimizer steps done
        self.rollout_index = 0  # rollouts done
        self.micro_counter = 0  # micro-batches processed by this process (legacy seed indexing)
        self.bad_in_a_row = 0
        self.skipped_steps = 0
        self.buffer: Rollout | None = None
        self.buffer_iter = 0
        self.out = Path(cfg.out_dir)
        self.logger = MetricsLogger(self.out / "metrics.jsonl", cfg.tracking_uri, cfg.experiment,
                                    params=to_dict(cfg), enabled=self.acc.is_main_process)

    # ------------------------------------------------------------------ geometry
    @property
    def rows_local(self) -> int:
        return self.cfg.rows_per_step // self.acc.num_processes

    @property
    def mb_size(self) -> int:
        return self.rows_local // self.cfg.grad_accum

    def _prompt_examples(self, r: int) -> list[dict]:
        """Prompts of rollout r: epoch-wise permutation of the data (seeded), wrapping around."""
        n, k = len(self.examples), self.cfg.prompts_per_step
        out = []
        for i in range(r * k, (r + 1) * k):
            epoch, pos = divmod(i, n)
            if self._perm_epoch != epoch:
                self._perm = torch.randperm(n, generator=_gen(self.cfg.seed, "data", epoch))
                self._perm_epoch = epoch
            out.append(self.examples[int(self._perm[pos])])
        return out

    # ------------------------------------------------------------------ 1–4. rollout
    @torch.no_grad()
    def make_rollout(self) -> Rollout:
        cfg, acc, r = self.cfg, self.acc, self.rollout_index
        model = acc.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        prompts = self._prompt_examples(r)
        g = cfg.num_generations
        row_examples = [prompts[i // g] for i in range(cfg.rows_per_step)]
        start = acc.process_index * self.rows_local
        local = row_examples[start:start + self.rows_local]
        tok = self.tokenizer
        tok.padding_side, tok.truncation_side = "left", "left"
        texts = [tok.apply_chat_template([{"role": "user", "content": self.prompt_fn(ex)}],
                                         add_generation_prompt=True, tokenize=False) for ex in local]
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=cfg.max_prompt_length,
                  add_special_tokens=False)
        L = cfg.algo.gen_length
        ids_all, rewards, per_fn = [], [], {}
        for j in range(cfg.grad_accum):
            gmb = acc.process_index * cfg.grad_accum + j  # global micro-batch index
            sl = slice(j * self.mb_size, (j + 1) * self.mb_size)
            p_ids, p_att = enc.input_ids[sl].to(acc.device), enc.attention_mask[sl].to(acc.device)
            # drop all-padding columns shared by the micro-batch so the canvas only carries what it needs
            keep = int(p_att.sum(-1).max())
            p_ids, p_att = p_ids[:, -keep:], p_att[:, -keep:]
            for c in range(0, self.mb_size, cfg.rollout.batch_size):
                cs = slice(c, c + cfg.rollout.batch_size)
                out = generate(model, p_ids[cs], p_att[cs], gen_length=L, block_length=cfg.algo.block_length,
                               steps=cfg.rollout.steps, mask_id=self.mask_id, temperature=cfg.rollout.temperature,
                               remasking=cfg.rollout.remasking,
                               generator=_gen(cfg.seed, "rollout", r, gmb, c, device=acc.device))
                ids_all.append((j, out, p_att[cs]))
        # 3. rewards on this process's rows, gathered so that a group may span processes
        mbs_ids: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(cfg.grad_accum)]
        for j, out, att in ids_all:
            mbs_ids[j].append((out, att))
        row = 0
        micro: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]] = []
        fns = self.task.reward_functions(cfg.reward_mode)
        lengths = []
        for j in range(cfg.grad_accum):
            ids = torch.cat([o for o, _ in mbs_ids[j]])
            att_p = torch.cat([a for _, a in mbs_ids[j]])
            P = ids.shape[1] - L
            comp = ids[:, P:]
            cmask = completion_mask(comp, self.eos_id)
            lengths.append(cmask.sum(-1).float())
            texts_out = tok.batch_decode(comp, skip_special_tokens=True)
            for text in texts_out:
                kwargs = self.task.reward_kwargs(local[row])
                parts = {f.name: f(text, **kwargs) for f in fns}
                for k, v in parts.items():
                    per_fn.setdefault(k, []).append(v)
                rewards.append(sum(v for v in parts.values() if not math.isnan(v)))  # nansum (§4.1)
                row += 1
            att = torch.cat([att_p, torch.ones(ids.shape[0], L, dtype=att_p.dtype, device=att_p.device)], dim=1)
            micro.append((ids, att, cmask, P))
        local_r = torch.tensor(rewards, dtype=torch.float32, device=acc.device)
        all_r = acc.gather(local_r)  # [rows_per_step], process order = row order
        adv_all = compute_advantages(cfg.algo.advantage, all_r, group_size=g)
        adv = adv_all[start:start + self.rows_local]
        mbs = []
        for j, (ids, att, cmask, P) in enumerate(micro):
            gmb = acc.process_index * cfg.grad_accum + j
            start_ratio = torch.rand(ids.shape[0], generator=_gen(cfg.seed, "unigrpo", r, gmb))
            mbs.append(MicroBatch(ids, att, P, cmask, adv[j * self.mb_size:(j + 1) * self.mb_size],
                                  start_ratio.to(acc.device)))
        length = torch.cat(lengths)
        n_tok = float(length.sum())
        metrics = {"reward/mean": float(all_r.mean()), "reward/std": float(all_r.std()) if all_r.numel() > 1 else 0.0,
                   "adv/abs_mean": float(adv_all.abs().mean()), "adv/pos_fraction": float((adv_all > 0).float().mean()),
                   "rollout/completion_length": float(length.mean()), "rollout/time_s": time.perf_counter() - t0,
                   "rollout/tokens_per_s": n_tok / max(time.perf_counter() - t0, 1e-9)}
        for k, v in per_fn.items():
            metrics[f"reward/{k}"] = sum(v) / len(v)
        ro = Rollout(mbs, metrics)
        # 4. old / reference estimates for every inner iteration (same masks as the update will draw)
        mu = cfg.algo.num_iterations
        if needs_old(cfg.algo) or needs_ref(cfg.algo):
            ro.old = [[None] * cfg.grad_accum for _ in range(mu)]
            ro.ref = [[None] * cfg.grad_accum for _ in range(mu)]
            for n in range(mu):
                for j, mb in enumerate(mbs):
                    counter = self.micro_counter + n * cfg.grad_accum + j
                    if needs_old(cfg.algo):
                        ro.old[n][j] = self._estimate(model, mb, n, j, counter)
                    if needs_ref(cfg.algo):
                        with _Reference(model):
                            ro.ref[n][j] = self._estimate(model, mb, n, j, counter)
        model.train(was_training)
        return ro

    def _mask_gen(self, n: int, j: int, counter: int) -> torch.Generator:
        cfg = self.cfg
        seeds = torch.randint(0, 4096, (cfg.algo.num_iterations,), generator=_gen(cfg.seed, "mask", self.rollout_index))
        idx = mask_seed_index(counter, n, cfg.algo.num_iterations, cfg.grad_accum, cfg.algo.seed_index_mode)
        gmb = self.acc.process_index * cfg.grad_accum + j
        return mask_generator(int(seeds[idx]), mode=cfg.algo.rng_mode, rollout_index=self.rollout_index,
                              rank=gmb, device=self.acc.device)

    def _estimate(self, model, mb: MicroBatch, n: int, j: int, counter: int):
        return estimate(model, mb, self.cfg.algo, mask_id=self.mask_id, generator=self._mask_gen(n, j, counter),
                        inner_iteration=n, chunk_size=self.cfg.chunk_size)

    # ------------------------------------------------------------------ 5. one optimizer step
    def optimizer_step(self, ro: Rollout, n: int) -> dict[str, float]:
        cfg, acc = self.cfg, self.acc
        self.model.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        finite = True
        for j, mb in enumerate(ro.micro_batches):
            counter = self.micro_counter
            self.micro_counter += 1
            ctx = acc.no_sync(self.model) if j < cfg.grad_accum - 1 else _NullContext()
            with ctx:
                est = self._estimate(self.model, mb, n, j, counter)
                old = ro.old[n][j] if ro.old else None
                ref = ro.ref[n][j] if ro.ref else None
                loss, m = method_loss(est, mb, cfg.algo, old=old, ref=ref)
                finite &= bool(torch.isfinite(loss))
                acc.backward(loss / cfg.grad_accum)
            for k, v in m.items():
                sums[k] = sums.get(k, 0.0) + v / cfg.grad_accum
        grad_norm = acc.clip_grad_norm_(self.params, cfg.optim.max_grad_norm)
        finite &= bool(torch.isfinite(torch.as_tensor(grad_norm)))
        finite_all = bool(acc.gather(torch.tensor([float(finite)], device=acc.device)).min() > 0)
        if finite_all:
            self.opt.step()
            self.sched.step()
            self.bad_in_a_row = 0
        else:
            self.skipped_steps += 1
            self.bad_in_a_row += 1
            if self.bad_in_a_row > cfg.max_bad_steps:
                raise NonFiniteError(f"step {self.step + 1}: {self.bad_in_a_row} consecutive optimizer steps with "
                                     f"a non-finite loss or gradient (train.max_bad_steps = {cfg.max_bad_steps})")
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        sums.update({"train/grad_norm": float(grad_norm), "train/lr": self.sched.get_last_lr()[0],
                     "train/step_time_s": time.perf_counter() - t0, "train/skipped_steps": float(self.skipped_steps),
                     "train/inner_iteration": float(n)})
        return sums

    # ------------------------------------------------------------------ loop, checkpoints
    def train(self, resume: bool = False, progress: bool = True) -> list[dict]:
        from tqdm.auto import tqdm

        cfg = self.cfg
        if resume:
            self.resume()
        history = []
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not (progress and self.acc.is_main_process),
                   desc=f"{cfg.algo.name} {cfg.task}")
        while self.step < cfg.max_steps:
            if self.buffer is None:
                self.buffer, self.buffer_iter = self.make_rollout(), 0
                ro_metrics = self.buffer.metrics
            else:
                ro_metrics = {}
            metrics = self.optimizer_step(self.buffer, self.buffer_iter)
            self.buffer_iter += 1
            if self.buffer_iter == cfg.algo.num_iterations:
                self.buffer = None
                self.rollout_index += 1
            row = {**ro_metrics, **metrics}
            history.append({"step": self.step, **row})
            self.logger.log(self.step, row)
            bar.update(1)
            if ro_metrics:
                bar.set_postfix(reward=f"{ro_metrics['reward/mean']:.3f}")
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.max_steps:
                self.save()
        bar.close()
        self.save()
        self.logger.close()
        return history

    def state(self) -> dict[str, Any]:
        return {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(), "step": self.step,
                "rollout_index": self.rollout_index, "micro_counter": self.micro_counter,
                "bad_in_a_row": self.bad_in_a_row, "skipped_steps": self.skipped_steps,
                "buffer": self.buffer, "buffer_iter": self.buffer_iter, "torch_rng": torch.get_rng_state()}

    def save(self) -> Path | None:
        self.acc.wait_for_everyone()
        path = None
        if self.acc.is_main_process:
            model = self.acc.unwrap_model(self.model)
            path = save_checkpoint(self.out / "checkpoints", self.step, model, self.state(),
                                   {"config": to_dict(self.cfg)}, keep_last=self.cfg.keep_checkpoints)
        self.acc.wait_for_everyone()
        return path

    def resume(self) -> bool:
        path = latest_checkpoint(self.out / "checkpoints")
        if path is None:
            return False
        state, _ = load_checkpoint(path, self.acc.unwrap_model(self.model))
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        for key in ("step", "rollout_index", "micro_counter", "bad_in_a_row", "skipped_steps", "buffer",
                    "buffer_iter"):
            setattr(self, key, state[key])
        torch.set_rng_state(state["torch_rng"])
        return True


class _NullContext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


class _Reference:
    """Context: the base model (LoRA adapter disabled) for reference estimates."""

    def __init__(self, model):
        self.ctx = model.disable_adapter() if hasattr(model, "disable_adapter") else None
        if self.ctx is None:
            raise ValueError("a KL to the reference model needs a LoRA adapter (reference = base weights with the "
                             "adapter disabled); enable train.lora or set algo.kl_beta 0")

    def __enter__(self):
        return self.ctx.__enter__()

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)
