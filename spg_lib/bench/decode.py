"""`spg bench decode`: fast batched block sampler vs the per-row reference sampler, same prompts, τ = 0.

    spg bench decode                                   # tiny model, tiny tokenizer vocabulary
    spg bench decode --vocab-size 126464               # LLaDA's vocabulary: the output head dominates
    spg bench decode --ref-rows 16 --threads 2         # time the reference on every row

Builds the tiny LLaDA-architecture model (``spg_lib.models.init_tiny_model``), draws random prompts of varied
lengths (left-padded), decodes them with :func:`spg_lib.decoding.generate` (all rows, one batch) and with
:func:`spg_lib.decoding.generate_reference` (the first ``--ref-rows`` rows; the reference decodes each row on
its own, so its time grows linearly with the number of rows and tokens/s measured on a subset is its
throughput on the whole batch), checks that both give identical tokens on the compared rows and prints
tokens/s of each. The last line is ``ratio: <fast tokens/s ÷ reference tokens/s>``. Exit status 1 when the
outputs differ.

What the ratio can be. Both samplers run the same network over the whole canvas at every step (LLaDA is
bidirectional; no KV cache, identical tokens), so per decoded token they do nearly the same transformer work; the
fast path saves what comes after it (last block and output head only on the still-masked positions of the
current block, softmax/argmax only there, reused [N, V] buffers, no padding columns or mask where avoidable) plus
what batching buys on the device. On one CPU thread batching buys nothing (the fast path runs cache-sized groups
of rows), so with the tiny 103-token vocabulary, where the network is everything, the ratio is ~1.1 (the saved
part of the last block); with LLaDA's 126464-token vocabulary the reference's output head and softmax over every
canvas position dominate and the ratio is ~10-12 (measured: 1.11 and 11.75; the CPU-time ratio is printed too,
wall-clock time on a shared machine also counts other jobs).
"""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=16, help="rows decoded by the fast sampler")
    parser.add_argument("--gen-length", type=int, default=256)
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument(
        "--vocab-size", type=int, default=None, help="model vocabulary (default: the tiny tokenizer's; LLaDA: 126464)"
    )
    parser.add_argument("--prompt-length", type=int, default=64, help="longest prompt; others are 50-100%% of it")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model weights and the prompts")
    parser.add_argument(
        "--ref-rows",
        type=int,
        default=4,
        help="rows decoded (and timed) by the slow reference; tokens/s is per decoded token either way",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def _prompts(batch: int, max_len: int, vocab: int, special: set[int], seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    allowed = torch.tensor([v for v in range(vocab) if v not in special], dtype=torch.long)
    lengths = torch.randint(max(1, max_len // 2), max_len + 1, (batch,), generator=g)
    lengths[0] = max_len
    pad = min(special) if special else 0
    ids = torch.full((batch, max_len), pad, dtype=torch.long)
    mask = torch.zeros((batch, max_len), dtype=torch.long)
    for r, n in enumerate(lengths.tolist()):
        ids[r, max_len - n :] = allowed[torch.randint(len(allowed), (n,), generator=g)]
        mask[r, max_len - n :] = 1
    return ids, mask, lengths


def run(args: argparse.Namespace) -> int:
    import torch

    from spg_lib.decoding import generate, generate_reference
    from spg_lib.models import init_tiny_model

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.batch_size < 1 or args.ref_rows < 1:
        raise ValueError("--batch-size and --ref-rows must be >= 1")
    ref_rows = min(args.ref_rows, args.batch_size)
    device = torch.device(args.device)
    model = init_tiny_model(vocab_size=args.vocab_size, seed=args.seed).to(device).eval()
    cfg = model.config
    vocab = int(model.get_output_embeddings().weight.shape[0])
    special = {int(cfg.mask_token_id), int(cfg.eos_token_id), int(cfg.pad_token_id)}
    ids, mask, lengths = _prompts(args.batch_size, args.prompt_length, vocab, special, args.seed)
    ids, mask = ids.to(device), mask.to(device)
    kw = {
        "gen_length": args.gen_length,
        "block_length": args.block_length,
        "steps": args.steps,
        "mask_id": int(cfg.mask_token_id),
        "temperature": 0.0,
    }
    n_params = sum(p.numel() for p in model.parameters())
    nb = args.gen_length // args.block_length
    print(
        f"model: tiny LLaDA, {n_params / 1e6:.2f} M params, vocab {vocab}, device {device}, "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"decode: batch {args.batch_size}, prompts {int(lengths.min())}-{int(lengths.max())} tokens (left-padded), "
        f"gen {args.gen_length}, block {args.block_length}, steps {args.steps} ({args.steps // max(nb, 1)}/block), "
        "temperature 0"
    )

    def timed(fn, *a):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*a)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out, time.perf_counter() - t0, time.process_time() - c0

    # warm-up: one block, one step of each path
    warm = {**kw, "gen_length": args.block_length, "steps": 1}
    generate(model, ids[:2], mask[:2], **warm)
    generate_reference(model, ids[:1], mask[:1], **warm)

    fast, t_fast, c_fast = timed(lambda: generate(model, ids, mask, **kw))
    ref, t_ref, c_ref = timed(lambda: generate_reference(model, ids[:ref_rows], mask[:ref_rows], **kw))
    fast_tps = args.batch_size * args.gen_length / t_fast
    ref_tps = ref_rows * args.gen_length / t_ref
    same = torch.equal(fast[:ref_rows], ref)
    # process CPU time is printed too: on a shared machine wall-clock time also counts other jobs' load
    print(f"fast:      {t_fast:8.2f} s (cpu {c_fast:.2f} s) for {args.batch_size} rows -> {fast_tps:10.1f} tokens/s")
    subset = (
        ""
        if ref_rows == args.batch_size
        else (
            f" (subset of {ref_rows}/{args.batch_size} rows: the reference decodes rows one by one, so its "
            f"tokens/s on the subset is its tokens/s on the batch; the whole batch would take "
            f"~{t_ref * args.batch_size / ref_rows:.1f} s)"
        )
    )
    print(f"reference: {t_ref:8.2f} s (cpu {c_ref:.2f} s) for {ref_rows} rows -> {ref_tps:10.1f} tokens/s{subset}")
    cpu_ratio = (args.batch_size / max(c_fast, 1e-9)) / (ref_rows / max(c_ref, 1e-9))
    print(f"cpu-time ratio: {cpu_ratio:.2f}")
    print(f"identical: {'yes' if same else 'NO'} ({ref_rows} rows compared)")
    print(f"ratio: {fast_tps / ref_tps:.2f}")
    return 0 if same else 1
