"""The RL trainer: one readable accelerate loop (SPG, arXiv 2510.09541, Algorithm 1; docs/algorithms.md).

    cycle (one rollout, μ optimizer steps):
      1. take the next `prompts_per_step` prompts; this process owns a contiguous slice of the
         prompts × g rows, split into `grad_accum` micro-batches
      2. generate the completions with the block sampler (no grad; eval mode, or train mode under
         `algo.rollout_train_mode`)
      3. score them with the task's rewards; gather rewards from every process; advantages per group
      4. methods whose spec needs them: old (and reference) estimates for every inner iteration
      5. for n in 0..μ-1: for each micro-batch: estimate under the current weights (fresh masks from the
         selected mask seed, see ``_mask_gen``), loss / grad_accum, backward; then clip, AdamW step, LR schedule

The method (its estimate, loss, needs and logged figures) is the ``MethodSpec`` registered under ``algo.name``
(``spg_lib.algos.methods``); nothing here names a method.

Randomness never touches global RNGs: every generator is seeded from (seed, rollout, global
micro-batch, ...) so results do not depend on how many processes share the work (a 2-process run
equals a 1-process run with the same global batch and twice the gradient accumulation).
Gradient accumulation goes through ``Accelerator.accumulate`` with ``gradient_accumulation_steps =
train.grad_accum`` (set here, whatever the launcher said), so DDP skips the all-reduce on all but the last
micro-batch, FSDP does the same, and DeepSpeed sees its accumulation boundary and applies its own clipping and
optimizer step there (``configure_deepspeed`` fills the DeepSpeed config from ``train``; see
configs/accelerate/README.md). Under FSDP and ZeRO-3 the parameters are sharded: every forward pass goes
through the prepared model (``ForwardOnly``), checkpoints carry ``Accelerator.save_state`` output, and weights
are gathered with ``Accelerator.get_state_dict`` (a collective: every process calls it).

Per-step metrics (``metrics.jsonl``, MLflow when configured; rollout keys on steps that made a rollout):
reward/mean, reward/std, reward/<function>; adv/mean, adv/std, adv/abs_mean, adv/pos_fraction,
adv/zero_fraction; rollout/completion_length, rollout/time_s, rollout/tokens_per_s; the method's own keys
(<method>/loss and its bounds: spg/elbo, spg/eubo, espo/elbo, ..., from the method's spec); train/loss,
train/grad_norm, train/lr (the rate this step used), train/update_time_s, train/step_time_s, train/tokens_per_s,
train/step_skipped, train/skipped_steps, train/inner_iteration. Figures are averaged over processes.

Run: ``spg train --config params.yaml`` or ``accelerate launch -m spg_lib.cli train --config ...``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from spg_lib.algos import compute_advantages, draw_mask_seeds, mask_generator, mask_seed_index
from spg_lib.config import to_dict
from spg_lib.decoding import completion_mask, generate
from spg_lib.io import atomic_write_text
from spg_lib.models.capabilities import ForwardOnly
from spg_lib.progress import Progress
from spg_lib.training.checkpoint import (
    begin_checkpoint,
    commit_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    set_rng_state,
    staging_dir,
)
from spg_lib.training.config import TrainConfig
from spg_lib.training.objective import Estimate, MicroBatch, estimate, method_loss, needs_old, needs_ref
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


def configure_deepspeed(ds_config: dict[str, Any], *, grad_accum: int, micro_batch_size: int,
                        max_grad_norm: float) -> dict[str, Any]:
    """Fill a DeepSpeed config (in place) from ``train``: accumulation, micro-batch size and clipping.

    ``"auto"`` or missing values take the trainer's; an explicit value that differs raises, because the trainer
    runs exactly ``train.grad_accum`` micro-batches of ``micro_batch_size`` rows per optimizer step and DeepSpeed
    clips and steps inside ``backward`` at the accumulation boundary (accelerate's default clip would be 1.0).

    Raises:
        ValueError: the config disagrees with train.grad_accum, the micro-batch size or train.optim.max_grad_norm.
    """
    want = {"gradient_accumulation_steps": (grad_accum, "train.grad_accum"),
            "train_micro_batch_size_per_gpu": (micro_batch_size, "train.prompts_per_step × train.num_generations / "
                                                                 "(processes × train.grad_accum)"),
            "gradient_clipping": (max_grad_norm, "train.optim.max_grad_norm")}
    for key, (value, source) in want.items():
        have = ds_config.get(key, "auto")
        if have == "auto" or have is None:
            ds_config[key] = value
        elif float(have) != float(value):
            raise ValueError(f"DeepSpeed config {key} = {have}, but {source} = {value}; set it to \"auto\" (the "
                             f"trainer fills it) or to {value}")
    return ds_config


@dataclasses.dataclass
class Rollout:
    """A scored rollout for this process: a list of micro-batches plus logging figures."""

    micro_batches: list[MicroBatch]
    metrics: dict[str, float]
    old: list[list[Any]] | None = None  # [μ][micro-batch] old estimates
    ref: list[list[Any]] | None = None
    tokens: float = 0.0  # completion tokens of the whole rollout (every process)


class Trainer:
    """Owns the model, optimizer and loop state; ``train()`` runs to ``cfg.max_steps``."""

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, tokenizer, examples: list[dict], task,
                 accelerator=None, prompt_fn=None):
        from accelerate import Accelerator
        from accelerate.utils import DistributedType

        self.cfg = cfg
        self.acc = accelerator or Accelerator(cpu=not torch.cuda.is_available(),
                                              gradient_accumulation_steps=cfg.grad_accum)
        cfg.check_world(self.acc.num_processes)
        # the loop runs exactly grad_accum micro-batches per optimizer step: accumulate() must agree, whatever
        # the launcher configured
        self.acc.gradient_accumulation_steps = cfg.grad_accum
        dist = self.acc.distributed_type
        self.is_deepspeed = dist == DistributedType.DEEPSPEED
        self.is_fsdp = dist == DistributedType.FSDP
        zero_stage = self.acc.state.deepspeed_plugin.zero_stage if self.is_deepspeed else 0
        self.sharded_state = self.is_fsdp or self.is_deepspeed  # optimizer state split across processes
        self.sharded_params = self.is_fsdp or zero_stage == 3  # parameters too: forward through the wrapper
        self.task = task
        self.tokenizer = tokenizer
        self.examples = examples
        self.prompt_fn = prompt_fn or task.train_prompt
        if not examples:
            raise ValueError("Trainer: the training set is empty")
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)
        self.mask_id = int(tokenizer.mask_token_id)
        self.eos_id = int(tokenizer.eos_token_id)
        self.trainable_names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = [p for p in model.parameters() if p.requires_grad]
        o = cfg.optim
        opt = torch.optim.AdamW(params, lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / o.warmup_steps)
                                                  if o.warmup_steps else 1.0)
        if self.is_deepspeed:
            configure_deepspeed(self.acc.state.deepspeed_plugin.deepspeed_config, grad_accum=cfg.grad_accum,
                                micro_batch_size=self.mb_size, max_grad_norm=o.max_grad_norm)
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
        self.mlflow_run_id: str | None = None  # restored by resume(): a resumed run logs to the same MLflow run
        self.logger: MetricsLogger | None = None  # opened by train(), after a resume

    def _open_logger(self) -> MetricsLogger:
        cfg = self.cfg
        tracking_uri = cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")  # config wins, then the env
        logger = MetricsLogger(self.out / "metrics.jsonl", tracking_uri, cfg.experiment, params=to_dict(cfg),
                               enabled=self.acc.is_main_process, run_id=self.mlflow_run_id)
        self.mlflow_run_id = logger.run_id or self.mlflow_run_id
        return logger

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

    def _policy(self, update: bool) -> torch.nn.Module:
        """The module the sampler and the estimates call.

        Sharded parameters (FSDP, ZeRO-3) exist in full only inside the prepared model's forward, so everything
        goes through it (``ForwardOnly``). Otherwise the update uses the prepared model (DDP's gradient hooks)
        and the rollout the plain module.
        """
        if self.sharded_params:
            return ForwardOnly(self.model)
        return self.model if update else self.acc.unwrap_model(self.model)

    # ------------------------------------------------------------------ 1–4. rollout
    @torch.no_grad()
    def make_rollout(self) -> Rollout:
        """Steps 1–4 with the policy in eval mode, or in train mode under ``algo.rollout_train_mode``."""
        model = self._policy(update=False)
        with _rollout_mode(model, train=self.cfg.algo.rollout_train_mode):
            return self._make_rollout(model)

    def _make_rollout(self, model: torch.nn.Module) -> Rollout:
        cfg, acc, r = self.cfg, self.acc, self.rollout_index
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
                               redecode_earlier_masks=cfg.rollout.redecode_earlier_masks,
                               gumbel_dtype=cfg.rollout.gumbel_dtype, keep_mode=cfg.algo.rollout_train_mode,
                               cache=cfg.rollout.cache, unmasking=cfg.rollout.unmasking,
                               threshold=cfg.rollout.threshold, early_stop=cfg.rollout.early_stop, eos_id=self.eos_id,
                               compile=cfg.rollout.compile,
                               generator=_gen(cfg.seed, "rollout", r, gmb, c, device=acc.device))
                ids_all.append((j, out, p_att[cs]))
        t_gen = time.perf_counter() - t0
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
            # rewards see the completion up to its first EOS only (the official decode also reads what follows
            # it, harmless for LLaDA, which pads with EOS, but not for a model that writes on after EOS)
            texts_out = tok.batch_decode(comp.masked_fill(~cmask, self.eos_id), skip_special_tokens=True)
            for text in texts_out:
                kwargs = self.task.reward_kwargs(local[row])
                parts = {f.name: f(text, **kwargs) for f in fns}
                for k, v in parts.items():
                    per_fn.setdefault(k, []).append(v)
                # nansum: NaN components are ignored (docs/algorithms.md#advantages)
                rewards.append(sum(v for v in parts.values() if not math.isnan(v)))
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
        length = acc.gather(torch.cat(lengths).to(acc.device))  # [rows_per_step]
        n_tok = float(length.sum())
        # per reward function: mean over every process's rows (NaN = not applicable, ignored)
        fn_names = sorted(per_fn)
        fn_vals = torch.tensor([[per_fn[k][i] for k in fn_names] for i in range(len(local))], dtype=torch.float32,
                               device=acc.device).reshape(len(local), len(fn_names))
        fn_vals = acc.gather(fn_vals)
        metrics = {"reward/mean": float(all_r.mean()), "reward/std": _std(all_r),
                   "adv/mean": float(adv_all.mean()), "adv/std": _std(adv_all),
                   "adv/abs_mean": float(adv_all.abs().mean()), "adv/pos_fraction": float((adv_all > 0).float().mean()),
                   "adv/zero_fraction": float((adv_all == 0).float().mean()),
                   "rollout/completion_length": float(length.mean()), "rollout/time_s": time.perf_counter() - t0,
                   "rollout/tokens_per_s": n_tok / max(t_gen, 1e-9)}
        for i, k in enumerate(fn_names):
            col = fn_vals[:, i]
            col = col[~torch.isnan(col)]
            metrics[f"reward/{k}"] = float(col.mean()) if col.numel() else float("nan")
        ro = Rollout(mbs, metrics, tokens=n_tok)
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
                        with _Reference(self.acc.unwrap_model(self.model)):
                            ro.ref[n][j] = self._estimate(model, mb, n, j, counter)
        return ro

    def _mask_gen(self, n: int, j: int, counter: int) -> torch.Generator | list[torch.Generator]:
        """The mask generator of micro-batch j in inner iteration n (one per MC sample for layout slot_sample).

        ``counter``: micro-batches this process ran before this one (the legacy seed index reads it). The seed
        array is the rollout's (layout ``rollout``) or this micro-batch slot's own (``slot``, ``slot_sample``).
        """
        cfg, algo = self.cfg, self.cfg.algo
        gmb = self.acc.process_index * cfg.grad_accum + j  # global micro-batch index
        key = (self.rollout_index,) if algo.mask_seed_layout == "rollout" else (self.rollout_index, gmb)
        seeds = draw_mask_seeds(algo.mask_seed_layout, num_iterations=algo.num_iterations, num_mc=algo.num_mc,
                                generator=_gen(cfg.seed, "mask", *key))  # [μ] or [μ, m]
        idx = mask_seed_index(counter, n, algo.num_iterations, cfg.grad_accum, algo.seed_index_mode)

        def make(seed: torch.Tensor) -> torch.Generator:
            return mask_generator(int(seed), mode=algo.rng_mode, rollout_index=self.rollout_index, rank=gmb,
                                  device=self.acc.device)

        return [make(s) for s in seeds[idx]] if seeds.dim() == 2 else make(seeds[idx])

    def _estimate(self, model, mb: MicroBatch, n: int, j: int, counter: int) -> Estimate:
        return estimate(model, mb, self.cfg.algo, mask_id=self.mask_id, generator=self._mask_gen(n, j, counter),
                        inner_iteration=n, chunk_size=self.cfg.chunk_size)

    # ------------------------------------------------------------------ 5. one optimizer step
    def optimizer_step(self, ro: Rollout, n: int) -> dict[str, float]:
        cfg, acc = self.cfg, self.acc
        self.model.train()
        policy = self._policy(update=True)
        t0 = time.perf_counter()
        lr = self.sched.get_last_lr()[0]  # the rate this step uses
        sums: dict[str, float] = {}
        finite = True
        acc.step = 0  # accumulate(): gradients sync (DeepSpeed: clips and steps) on this step's last micro-batch
        for j, mb in enumerate(ro.micro_batches):
            counter = self.micro_counter
            self.micro_counter += 1
            with acc.accumulate(self.model):
                est = self._estimate(policy, mb, n, j, counter)
                old = ro.old[n][j] if ro.old else None
                ref = ro.ref[n][j] if ro.ref else None
                loss, m = method_loss(est, mb, cfg.algo, old=old, ref=ref)
                finite &= bool(torch.isfinite(loss))
                acc.backward(loss)  # divided by grad_accum inside (by accelerate, or by the DeepSpeed engine)
            m = {**m, "train/loss": float(loss.detach())}
            for k, v in m.items():
                sums[k] = sums.get(k, 0.0) + v / cfg.grad_accum
        # FSDP clips through the wrapper, which needs all of its parameters; frozen ones have no gradient
        grad_norm = acc.clip_grad_norm_(self.model.parameters() if self.is_fsdp else self.params,
                                        cfg.optim.max_grad_norm)
        if grad_norm is not None:  # (DeepSpeed reports None when it computed no norm)
            finite &= math.isfinite(float(grad_norm))
        grad_norm = float("nan") if grad_norm is None else float(grad_norm)
        finite_all = bool(acc.gather(torch.tensor([float(finite)], device=acc.device)).min() > 0)
        if finite_all:
            self.opt.step()  # DeepSpeed: a no-op, the engine stepped at the accumulation boundary
            self.sched.step()
            self.bad_in_a_row = 0
        else:
            # skipped: no update (DeepSpeed applies or skips it inside backward; its own overflow check applies)
            self.skipped_steps += 1
            self.bad_in_a_row += 1
            if self.bad_in_a_row > cfg.max_bad_steps:
                raise NonFiniteError(f"step {self.step + 1}: {self.bad_in_a_row} consecutive optimizer steps with "
                                     f"a non-finite loss or gradient (train.max_bad_steps = {cfg.max_bad_steps})")
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        metrics = _mean_over_processes(acc, sums)
        metrics.update({"train/grad_norm": grad_norm, "train/lr": lr, "train/update_time_s": time.perf_counter() - t0,
                        "train/step_skipped": float(not finite_all), "train/skipped_steps": float(self.skipped_steps),
                        "train/inner_iteration": float(n)})
        return metrics

    # ------------------------------------------------------------------ loop, checkpoints
    def train(self, resume: bool = False, progress: bool = True) -> list[dict]:
        """Run to ``cfg.max_steps``; ``progress``: a bar on a terminal, a line every few steps elsewhere."""
        cfg = self.cfg
        if resume:
            self.resume()
        elif self.step == 0:  # (a caller may have called resume() itself)
            self._refuse_stale_checkpoints()
        self.logger = self._open_logger()
        self._truncate_log(self.step)  # a resumed run logs the steps after its checkpoint again
        history = []
        bar = Progress(cfg.max_steps, f"{cfg.algo.name} {cfg.task}", initial=self.step,
                       enabled=progress and self.acc.is_main_process)
        while self.step < cfg.max_steps:
            t0 = time.perf_counter()
            if self.buffer is None:
                self.buffer, self.buffer_iter = self.make_rollout(), 0
                ro_metrics = self.buffer.metrics
            else:
                ro_metrics = {}
            tokens = self.buffer.tokens
            metrics = self.optimizer_step(self.buffer, self.buffer_iter)
            self.buffer_iter += 1
            if self.buffer_iter == cfg.algo.num_iterations:
                self.buffer = None
                self.rollout_index += 1
            dt = time.perf_counter() - t0
            metrics.update({"train/step_time_s": dt, "train/tokens_per_s": tokens / max(dt, 1e-9)})
            row = {**ro_metrics, **metrics}
            history.append({"step": self.step, **row})
            self.logger.log(self.step, row)
            bar.update(self.step, **({"reward": ro_metrics["reward/mean"]} if ro_metrics else {}),
                       loss=metrics["train/loss"])
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.max_steps:
                self.save()
        bar.close()
        self.save()
        self.logger.close()
        return history

    def _refuse_stale_checkpoints(self) -> None:
        """A fresh run must not mix with an earlier run's checkpoints (a later --resume would pick those up)."""
        old = latest_checkpoint(self.out / "checkpoints")
        if old is not None:
            raise FileExistsError(f"{old.parent} holds checkpoints of an earlier run (latest {old.name}): pass "
                                  f"--resume to continue it, or remove them / choose another train.out_dir")

    def _truncate_log(self, keep_through: int) -> None:
        """Keep only metrics.jsonl rows with step <= ``keep_through`` (0: a fresh, empty log)."""
        path = self.logger.path
        if not self.acc.is_main_process or not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if int(row.get("step", 0)) <= keep_through:
                kept.append(line + "\n")
        atomic_write_text(path, "".join(kept))

    def state(self, rngs: list[dict] | None = None, buffers: list[Rollout | None] | None = None) -> dict[str, Any]:
        """Loop state: scheduler, counters, every process's rollout buffer and RNG states (+ optimizer if unsharded)."""
        out = {"scheduler": self.sched.state_dict(), "step": self.step, "rollout_index": self.rollout_index,
               "micro_counter": self.micro_counter, "bad_in_a_row": self.bad_in_a_row,
               "skipped_steps": self.skipped_steps, "buffer_iter": self.buffer_iter,
               "buffers": buffers if buffers is not None else [_to_device(self.buffer, "cpu")],
               "rng": rngs if rngs is not None else [rng_state()], "world_size": self.acc.num_processes,
               "mlflow_run_id": self.mlflow_run_id}
        if not self.sharded_state:
            out["optimizer"] = self.opt.state_dict()
        return out

    def save(self) -> Path | None:
        """Write checkpoint ``step`` (every process must call it: gathering is collective)."""
        from accelerate.utils import gather_object

        acc = self.acc
        root = self.out / "checkpoints"
        acc.wait_for_everyone()
        if self.sharded_params:  # FSDP / ZeRO-3: all-gathered (collective), complete on the main process only
            full = acc.get_state_dict(self.model)
        else:  # replicated: read the live parameters (no copy of a frozen base)
            full = dict(acc.unwrap_model(self.model).named_parameters()) if acc.is_main_process else {}
        rngs = gather_object([rng_state()])
        buffers = gather_object([_to_device(self.buffer, "cpu")])
        tmp = staging_dir(root, self.step)
        if acc.is_main_process:
            begin_checkpoint(root, self.step)
        acc.wait_for_everyone()
        if self.sharded_state:  # sharded model / optimizer state: every process writes its part
            kwargs = {"exclude_frozen_parameters": True} if self.is_deepspeed else {}
            acc.save_state(str(tmp / "accelerate"), **kwargs)
            acc.wait_for_everyone()
        path = None
        if acc.is_main_process:
            missing = [n for n in self.trainable_names if n not in full]
            if missing:
                raise RuntimeError(f"the gathered state dict lacks trainable parameters {missing[:3]}")
            weights = {n: full[n] for n in self.trainable_names}
            path = commit_checkpoint(tmp, weights, self.state(rngs, buffers), {"config": to_dict(self.cfg)},
                                     keep_last=self.cfg.keep_checkpoints)
        acc.wait_for_everyone()
        return path

    def resume(self) -> bool:
        """Restore the latest checkpoint under out_dir/checkpoints; False when there is none."""
        path = latest_checkpoint(self.out / "checkpoints")
        if path is None:
            return False
        acc = self.acc
        state, _ = load_checkpoint(path, None if self.sharded_state else acc.unwrap_model(self.model))
        if self.sharded_state:
            kwargs = {"load_module_strict": False} if self.is_deepspeed else {}
            acc.load_state(str(path / "accelerate"), **kwargs)
        else:
            self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        for key in ("step", "rollout_index", "micro_counter", "bad_in_a_row", "skipped_steps", "buffer_iter"):
            setattr(self, key, state[key])
        self.mlflow_run_id = state.get("mlflow_run_id") or self.mlflow_run_id
        rank, world = acc.process_index, state.get("world_size", 1)
        buffers = state["buffers"]
        if any(b is not None for b in buffers) and world != acc.num_processes:
            raise ValueError(f"{path} was written by {world} processes in the middle of a rollout; resume it with "
                             f"{world} processes (the rollout buffer is split across them)")
        self.buffer = _to_device(buffers[min(rank, len(buffers) - 1)], acc.device)
        rngs = state["rng"]
        set_rng_state(rngs[min(rank, len(rngs) - 1)])  # dropout continues as if never stopped
        return True


def _std(x: torch.Tensor) -> float:
    return float(x.std()) if x.numel() > 1 else 0.0


def _mean_over_processes(acc, values: dict[str, float]) -> dict[str, float]:
    """Average a dict of floats over processes (every process has the same keys)."""
    if acc.num_processes == 1 or not values:
        return dict(values)
    keys = sorted(values)
    t = acc.reduce(torch.tensor([values[k] for k in keys], dtype=torch.float64, device=acc.device), "mean")
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


def _to_device(obj: Any, device) -> Any:
    """A copy of ``obj`` (tensors inside dataclasses / lists / tuples / dicts) with every tensor on ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: _to_device(getattr(obj, f.name), device)
                                           for f in dataclasses.fields(obj) if f.init})
    if isinstance(obj, list | tuple):
        return type(obj)(_to_device(v, device) for v in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


@contextlib.contextmanager
def _rollout_mode(model: torch.nn.Module, *, train: bool):
    """The policy's mode while it rolls out and gives old / reference estimates: eval, or train (dropout active).

    The rollout sampler is called with ``keep_mode=train``, so in train mode the completions too are drawn with
    dropout on, as in the official trainers.
    """
    was_training = model.training
    model.train(train)
    try:
        yield
    finally:
        model.train(was_training)


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
