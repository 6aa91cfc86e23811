"""`spg bench likelihood`: SPG bound estimator + loss, forward and backward, fast path vs official-style baseline.

    spg bench likelihood                              # tiny LLaDA, batch 6, num_mc 2, prompt 64 + gen 256
    spg bench likelihood --vocab-size 126464          # LLaDA's vocabulary: the full-vocab softmax dominates
    spg bench likelihood --prompt-length 200 --repeats 5

Both variants run one SPG step (block_random masks shared by both, faithful estimator settings: Mixture,
β = 1.5, ω = 0.5, drop-zero EUBO, token-normalised loss) on the same noisy batch [B·m, P+L]:

- fast: ``completion_token_logprobs`` — model trunk → final hidden states, output head applied only to the
  masked completion positions in chunks (fp32 log-softmax per chunk, checkpointed so backward recomputes the
  chunk logits), vectorised ELBO / EUBO (log-space) and ``spg_loss``.
- baseline: what the official trainer does — full logits [B·m, P+L, V], cross-entropy over the whole sequence,
  a second full softmax for p, per-(sequence, sample) Python loops for the ELBO and EUBO.

Each variant runs in its own fresh worker process (so one cannot inherit the other's heap). Time = median
wall time per step over ``--repeats`` steps after one warm-up step. Peak memory = increase of the worker's
peak resident set size (Linux VmHWM, reset through /proc/self/clear_refs after the warm-up) over its resident
set just before the timed steps; glibc's mmap threshold is pinned (MALLOC_MMAP_THRESHOLD_) so freed tensor
buffers leave the RSS instead of staying in the heap. This is CPU process memory (model activations,
logits, autograd buffers), not a GPU allocator figure. The last line is ``speedup: <x> memory_ratio: <y>``
with speedup = baseline time / fast time and memory_ratio = fast peak / baseline peak.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from spg_lib.bench.memory import reset_cpu_peak, status_kib


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=6, help="sequences B per micro-batch (default 6)")
    parser.add_argument("--num-mc", type=int, default=2, help="MC samples m per sequence (default 2)")
    parser.add_argument("--gen-length", type=int, default=256, help="completion length L (default 256)")
    parser.add_argument("--prompt-length", type=int, default=64, help="prompt length P (default 64)")
    parser.add_argument("--block-length", type=int, default=32, help="block size K (default 32)")
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="vocabulary of the tiny model (default: tiny tokenizer's; LLaDA: 126464)")
    parser.add_argument("--chunk-size", type=int, default=256,
                        help="positions per head chunk of the fast path (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per variant (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=["fast", "baseline"], default=None, help=argparse.SUPPRESS)


# --------------------------------------------------------------------------------------------------
# the two implementations
# --------------------------------------------------------------------------------------------------


def _fast_loss(model, noisy, ids, cmask, adv, *, prompt_len, mask_id, beta, omega, chunk_size):
    from spg_lib.algos.likelihood import elbo_estimate, eubo_estimate
    from spg_lib.algos.masking import bound_mask
    from spg_lib.algos.objectives import spg_loss
    from spg_lib.training.objective import completion_token_logprobs

    B, m, T = noisy.shape
    L = T - prompt_len
    masked = bound_mask(noisy, cmask, prompt_len=prompt_len, mask_id=mask_id)  # [B, m, L]
    targets = ids[:, prompt_len:].unsqueeze(1).expand(B, m, L).reshape(B * m, L)  # [N, L]
    logp = completion_token_logprobs(model, noisy.reshape(B * m, T), None, targets, prompt_len,
                                     chunk_size=chunk_size, needed=masked.reshape(B * m, L)).reshape(B, m, L)
    elbo = elbo_estimate(logp, masked, cmask)
    eubo = eubo_estimate(logp, masked, cmask, beta=beta, drop_unmasked_tokens=True)
    loss, _ = spg_loss(elbo, eubo, adv, cmask, neg_estimator="mix", mix_weight=omega, loss_norm="completion_tokens")
    return loss


def _baseline_loss(model, noisy, ids, cmask, adv, *, prompt_len, mask_id, beta, omega, chunk_size):
    import torch
    import torch.nn.functional as F

    B, m, T = noisy.shape
    L = T - prompt_len
    N = B * m
    logits = model(noisy.reshape(N, T)).logits  # [N, T, V]: full head on every position
    V = logits.shape[-1]
    targets = ids.unsqueeze(1).expand(B, m, T).reshape(N, T)
    logp_full = -F.cross_entropy(logits.reshape(N * T, V), targets.reshape(-1), reduction="none").reshape(N, T)
    p_full = torch.softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # second softmax
    logp = logp_full[:, prompt_len:].reshape(B, m, L).float()
    p = p_full[:, prompt_len:].reshape(B, m, L).float()
    elbos, eubos, lengths = [], [], []
    for b in range(B):
        L_c = cmask[b].float().sum()
        per_sample = []
        a = torch.zeros(L)
        for t in range(m):
            M = ((noisy[b, t, prompt_len:] == mask_id) & cmask[b]).float()
            per_sample.append((logp[b, t] * M).sum() / M.sum().clamp(min=1e-8))
            t_hat = (M.sum() / L_c).clamp(min=1e-8)
            a = a + p[b, t] ** beta * M / t_hat
        a = a / m
        U = a > 0
        log_a = torch.where(U, torch.log(torch.where(U, a, torch.ones_like(a))), torch.zeros_like(a))
        elbos.append(torch.stack(per_sample).mean())
        eubos.append(log_a.sum() / beta / U.float().sum().clamp(min=1e-8))
        lengths.append(L_c)
    total, norm = 0.0, 0.0
    for b in range(B):
        ell = elbos[b] if adv[b] > 0 else omega * eubos[b] + (1 - omega) * elbos[b]
        total = total + adv[b] * ell * lengths[b]
        norm = norm + lengths[b]
    return -total / norm


# --------------------------------------------------------------------------------------------------
# worker (one variant, fresh process)
# --------------------------------------------------------------------------------------------------





def _worker(args: argparse.Namespace) -> int:
    import gc
    import time

    import torch

    from spg_lib.algos.advantages import group_center
    from spg_lib.algos.masking import forward_process
    from spg_lib.models import init_tiny_model

    model = init_tiny_model(vocab_size=args.vocab_size, seed=args.seed)
    model.train(False)
    cfg = model.config
    mask_id = int(cfg.mask_token_id)
    V = model.get_output_embeddings().weight.shape[0]
    B, m, P, L = args.batch_size, args.num_mc, args.prompt_length, args.gen_length
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, min(V, cfg.vocab_size), (B, P + L), generator=g)
    ids[ids == mask_id] = (mask_id + 1) % V
    lengths = torch.randint(L // 4, L + 1, (B,), generator=g)
    lengths[0] = L  # one completion without EOS
    cmask = torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)  # [B, L]
    adv = group_center(torch.rand(B, generator=g), group_size=B)
    noisy = forward_process("block_random", ids, cmask, prompt_len=P, mask_id=mask_id, num_mc=m,
                            block_length=args.block_length, generator=g).noisy  # [B, m, T]
    fn = _fast_loss if args.worker == "fast" else _baseline_loss
    kwargs = dict(prompt_len=P, mask_id=mask_id, beta=1.5, omega=0.5, chunk_size=args.chunk_size)

    def step() -> float:
        model.zero_grad(set_to_none=True)
        loss = fn(model, noisy, ids, cmask, adv, **kwargs)
        loss.backward()
        return float(loss.detach())

    loss = step()  # warm-up
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    gc.collect()
    reset = reset_cpu_peak()
    base = status_kib("VmRSS")
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = status_kib("VmHWM")
    print(json.dumps({
        "variant": args.worker, "time_s": statistics.median(times), "peak_mib": max(peak - base, 0) / 1024,
        "peak_reset": reset, "loss": loss, "grad_norm": float(grad.norm()), "vocab": V, "d_model": cfg.d_model,
        "n_layers": cfg.n_layers,
    }))
    return 0


def _run_worker(variant: str, argv: list[str]) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    proc = subprocess.run([sys.executable, "-m", "spg_lib.bench.likelihood", "--worker", variant, *argv],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _argv(args: argparse.Namespace) -> list[str]:
    out = ["--batch-size", str(args.batch_size), "--num-mc", str(args.num_mc), "--gen-length", str(args.gen_length),
           "--prompt-length", str(args.prompt_length), "--block-length", str(args.block_length),
           "--chunk-size", str(args.chunk_size), "--repeats", str(args.repeats), "--seed", str(args.seed)]
    if args.vocab_size is not None:
        out += ["--vocab-size", str(args.vocab_size)]
    return out


def run(args: argparse.Namespace) -> int:
    if args.worker:
        return _worker(args)
    for name in ("batch_size", "num_mc", "gen_length", "block_length", "chunk_size", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if args.prompt_length < 0 or args.gen_length % args.block_length:
        raise ValueError("--prompt-length must be >= 0 and --block-length must divide --gen-length")
    argv = _argv(args)
    fast = _run_worker("fast", argv)
    base = _run_worker("baseline", argv)
    print(f"likelihood benchmark: tiny LLaDA (vocab {fast['vocab']}, d_model {fast['d_model']}, "
          f"{fast['n_layers']} layers), batch {args.batch_size} x num_mc {args.num_mc}, prompt {args.prompt_length}"
          f" + gen {args.gen_length}, block {args.block_length}, chunk {args.chunk_size}, "
          f"median of {args.repeats} steps (forward + backward)")
    print("peak memory: increase of the worker process's peak RSS (VmHWM, reset after a warm-up step) over its RSS "
          "before the timed steps; one fresh process per variant" + ("" if fast["peak_reset"] else
                                                                      " [VmHWM reset unavailable: upper bound]"))
    for r in (fast, base):
        print(f"{r['variant']:>8}: {r['time_s']:.4f} s/step  peak +{r['peak_mib']:.1f} MiB  loss {r['loss']:.6f}  "
              f"grad-norm {r['grad_norm']:.6f}")
    print(f"loss difference: {abs(fast['loss'] - base['loss']):.2e}  grad-norm difference: "
          f"{abs(fast['grad_norm'] - base['grad_norm']):.2e}")
    speedup = base["time_s"] / fast["time_s"]
    ratio = fast["peak_mib"] / base["peak_mib"] if base["peak_mib"] > 0 else float("nan")
    print(f"speedup: {speedup:.2f} memory_ratio: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="spg bench likelihood")
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
