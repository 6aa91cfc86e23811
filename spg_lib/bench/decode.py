"""`spg bench decode`: every decoding mode on the same prompts, against the per-row reference sampler, τ = 0.

    spg bench decode                                        # (a) random tiny model, batch 16, gen 256, block 32
    spg bench decode --vocab-size 126464                    # (a) with LLaDA's vocabulary (the head dominates)
    spg bench decode --checkpoint runs/train/final --config params.yaml     # (b) a trained model on its test set

Modes (one table, the same prompts): ``reference`` (the official per-row sampler, timed on ``--ref-rows``
rows: its tokens/s on a subset is its tokens/s on the batch), ``exact`` (the fast exact sampler), ``prefix`` and
``dual`` (block KV caches), ``dual+threshold`` (confidence-threshold unmasking) and ``dual+threshold+early-stop``.
Columns: wall time, tokens/s and its ratio to the reference, model token-forwards per completion (counted by a
hook on the input embedding: every position a forward processes) and how many times fewer than the reference,
peak working memory (CUDA: allocator peak over the weights; CPU: live-tensor peak, see ``_measure``), the same per
row decoded at once (the reference decodes one row at a time, the other modes the whole batch; activations grow
linearly with the rows, so per row is the fair comparison) and its ratio to the reference's, and the share of
tokens equal to the exact sampler's (in the working dtype). Setting (b) adds each mode's accuracy on the test
split (``evaluate`` section of ``--config``: prompts, lengths, steps).

Exactness: ``exact`` must equal ``reference`` token for token. With random float32 weights near-ties make a few
tokens differ, so the agreement rate is reported in the working dtype and exactness is checked in float64
(``--float64-check``, default on CPU); exit status 1 when the float64 check fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from spg_lib.bench.memory import TensorMemoryPeak

MODES: dict[str, dict[str, Any] | None] = {
    "reference": None,
    "exact": {"cache": "none"},
    "prefix": {"cache": "prefix"},
    "dual": {"cache": "dual"},
    "dual+threshold": {"cache": "dual", "unmasking": "threshold"},
    "dual+threshold+early-stop": {"cache": "dual", "unmasking": "threshold", "early_stop": True},
    "dual+compile": {"cache": "dual", "compile": True},
    "dual+threshold+early-stop+compile": {"cache": "dual", "unmasking": "threshold", "early_stop": True,
                                          "compile": True},
}
COMPILED_MODES = tuple(m for m, o in MODES.items() if o and o.get("compile"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=16, help="rows decoded by every batched mode")
    parser.add_argument("--gen-length", type=int, default=256)
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument(
        "--vocab-size", type=int, default=None, help="model vocabulary (default: the tiny tokenizer's; LLaDA: 126464)"
    )
    parser.add_argument("--prompt-length", type=int, default=64, help="longest prompt; others are 50-100%% of it")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model weights and the prompts")
    parser.add_argument("--ref-rows", type=int, default=4,
                        help="rows decoded (and timed) by the slow reference; tokens/s is per decoded token either way")
    parser.add_argument("--threshold", type=float, default=0.9, help="confidence threshold of the threshold modes")
    parser.add_argument("--modes", default=",".join(m for m in MODES if m not in COMPILED_MODES),
                        help=f"comma-separated subset of {', '.join(MODES)} (default: all but the compiled ones)")
    parser.add_argument("--compile", action="store_true",
                        help=f"also run {', '.join(COMPILED_MODES)} (torch.compile'd cache forwards; the compilation "
                             "happens in an untimed warm-up whose time is printed)")
    parser.add_argument("--checkpoint", default=None,
                        help="setting (b): a trained checkpoint, decoded on its task's test split with --config's "
                             "evaluate section; accuracy is reported per mode")
    parser.add_argument("--config", default="params.yaml", help="parameter file of setting (b)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="setting (b): dotted override of --config, e.g. evaluate.data=<test file>")
    parser.add_argument("--limit", type=int, default=None, help="setting (b): first N test examples only")
    parser.add_argument("--float64-check", choices=("auto", "yes", "no"), default="auto",
                        help="check exact == reference in float64 on the reference rows (auto: on CPU)")
    parser.add_argument("--shape", choices=("tiny", "llada-8b"), default="tiny",
                        help="setting (a) model: tiny | llada-8b (the LLaDA-8B architecture, random weights, GPU)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float64"), default=None,
                        help="model dtype (default: bfloat16 on CUDA, float32 on CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON")


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


class TokenForwards:
    """Counts the positions every model forward processes (a hook on the input embedding)."""

    def __init__(self, model: Any) -> None:
        self.count = 0
        self._handle = model.get_input_embeddings().register_forward_hook(self._hook)

    def _hook(self, module: Any, inputs: tuple, output: Any) -> None:
        self.count += int(inputs[0].numel())

    def close(self) -> None:
        self._handle.remove()


def _timed(device: Any, fn) -> tuple[Any, float, int | None]:
    """(output, seconds, CUDA allocator peak over the start or None on CPU) of ``fn()``."""
    import torch

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
    t0 = time.perf_counter()
    out = fn()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return out, seconds, (torch.cuda.max_memory_allocated(device) - start) if cuda else None


def _measure(model: Any, device: Any, fn, hook: bool = False, compiled: bool = False
             ) -> tuple[Any, float, int, int | None]:
    """(output, seconds, token-forwards, peak working bytes) of ``fn(stats)``.

    Token-forwards: what the sampler counted into ``stats`` at each of its model calls (rows x positions), or
    with ``hook`` (the reference, which takes no stats) a hook on the input embedding (every position a forward
    processes). The two agree (tests/bench/test_decode.py); only the engine's count works for torch.compile'd
    forwards, which would trace a hook into their graph.

    Peak working memory: on CUDA the allocator peak over the start, in the timed run; on CPU the live-tensor peak
    (:class:`spg_lib.bench.memory.TensorMemoryPeak`) of a second, untimed run of ``fn`` (the same work: τ = 0),
    because tracking every op would distort the time. Not on CPU for ``compiled`` modes (None): inductor's
    kernels allocate their buffers below the dispatcher, where the tracker cannot see them."""
    counter = TokenForwards(model) if hook else None
    stats: dict[str, Any] = {}
    try:
        out, seconds, peak = _timed(device, lambda: fn(stats))
    finally:
        if counter is not None:
            counter.close()
    if peak is None and not compiled:
        with TensorMemoryPeak() as mem:
            fn({})
        peak = mem.peak
    return out, seconds, counter.count if counter is not None else int(stats["token_forwards"]), peak


def _print_table(rows: list[dict[str, Any]], with_accuracy: bool) -> None:
    ref = next((r for r in rows if r["mode"] == "reference"), rows[0])
    for r in rows:
        r["speedup"] = r["tokens_per_s"] / ref["tokens_per_s"]
        r["fewer_forwards"] = ref["forwards_per_completion"] / max(r["forwards_per_completion"], 1e-9)
        r["peak_bytes_per_row"] = None if r["peak_bytes"] is None else r["peak_bytes"] / r["concurrent_rows"]
    ref_row = ref["peak_bytes_per_row"]
    for r in rows:
        per_row = r["peak_bytes_per_row"]
        r["memory_vs_ref"] = None if per_row is None or not ref_row else per_row / ref_row
    name_w = max(27, *(len(r["mode"]) for r in rows))
    cols = [("mode", name_w), ("time s", 8), ("tokens/s", 10), ("x ref", 6), ("fwd tok/compl", 13), ("x fewer", 7),
            ("peak MiB", 8), ("MiB/row", 8), ("mem/row x ref", 13), ("= exact", 7)] + (
        [("accuracy %", 10)] if with_accuracy else [])
    print("| " + " | ".join(f"{n:{w}s}" if i == 0 else f"{n:>{w}s}" for i, (n, w) in enumerate(cols)) + " |")
    print("|" + "|".join("-" * (w + 2) for _, w in cols) + "|")

    def mib(v: float | None) -> str:
        return "-" if v is None else f"{v / 2**20:.1f}"

    for r in rows:
        cells = [r["mode"], f"{r['seconds']:.2f}", f"{r['tokens_per_s']:.1f}", f"{r['speedup']:.2f}",
                 f"{r['forwards_per_completion']:.0f}", f"{r['fewer_forwards']:.2f}", mib(r["peak_bytes"]),
                 mib(r["peak_bytes_per_row"]), "-" if r["memory_vs_ref"] is None else f"{r['memory_vs_ref']:.2f}",
                 "-" if r.get("agreement") is None else f"{100 * r['agreement']:.1f}%"]
        if with_accuracy:
            cells.append(f"{r['accuracy']:.1f}" if r.get("accuracy") is not None else "(= exact)")
        print("| " + " | ".join(f"{c:{w}s}" if i == 0 else f"{c:>{w}s}"
                                for i, (c, (_, w)) in enumerate(zip(cells, cols, strict=True))) + " |")


def _modes(spec: str) -> list[str]:
    names = [m.strip() for m in spec.split(",") if m.strip()]
    bad = [m for m in names if m not in MODES]
    if bad or not names:
        raise ValueError(f"--modes: unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(MODES)}")
    if "reference" not in names:
        names.insert(0, "reference")  # the baseline of every ratio
    return names


def _float64_exact(model: Any, ids, mask, kw: dict[str, Any]) -> bool:
    """exact == reference on these rows with the model in float64 (no near-ties)."""
    import copy

    import torch

    from spg_lib.decoding import generate, generate_reference

    m64 = copy.deepcopy(model).to(torch.float64)
    return torch.equal(generate(m64, ids, mask, **kw), generate_reference(m64, ids, mask, **kw))


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.batch_size < 1 or args.ref_rows < 1:
        raise ValueError("--batch-size and --ref-rows must be >= 1")
    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
    modes = _modes(args.modes)
    if args.compile:
        modes += [m for m in COMPILED_MODES if m not in modes]
    device = torch.device(args.device)
    rows = _run_checkpoint(args, modes, device) if args.checkpoint else _run_random(args, modes, device)
    ok = all(r.get("exact_float64", True) for r in rows)
    if args.json:
        from spg_lib.io import atomic_write_json

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.json), {"setting": "b" if args.checkpoint else "a", "rows": rows})
    return 0 if ok else 1


def _run_random(args: argparse.Namespace, modes: list[str], device: Any) -> list[dict[str, Any]]:
    """Setting (a): the random-weight tiny model on random left-padded prompts."""
    import torch

    from spg_lib.decoding import generate, generate_reference
    from spg_lib.models import init_tiny_model

    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    if args.shape == "llada-8b":
        from spg_lib.bench.train_step import build_model, shape_config

        if device.type != "cuda":
            raise ValueError("--shape llada-8b decodes an 8B-parameter model: run it with --device cuda")
        model = build_model(shape_config("llada-8b"), device, dtype, args.seed).eval()
    else:
        model = init_tiny_model(vocab_size=args.vocab_size, seed=args.seed).to(device=device, dtype=dtype).eval()
    cfg = model.config
    vocab = int(model.get_output_embeddings().weight.shape[0])
    special = {int(cfg.mask_token_id), int(cfg.eos_token_id), int(cfg.pad_token_id)}
    ids, mask, lengths = _prompts(args.batch_size, args.prompt_length, vocab, special, args.seed)
    ids, mask = ids.to(device), mask.to(device)
    ref_rows = min(args.ref_rows, args.batch_size)
    kw = {"gen_length": args.gen_length, "block_length": args.block_length, "steps": args.steps,
          "mask_id": int(cfg.mask_token_id), "temperature": 0.0}
    n_params = sum(p.numel() for p in model.parameters())
    print(f"(a) model: {args.shape} LLaDA (random weights), {n_params / 1e6:.2f} M params, vocab {vocab}, "
          f"device {device}, {next(model.parameters()).dtype}, threads {torch.get_num_threads()}")
    print(f"decode: batch {args.batch_size} (reference: {ref_rows} rows), prompts {int(lengths.min())}-"
          f"{int(lengths.max())} tokens (left-padded), gen {args.gen_length}, block {args.block_length}, steps "
          f"{args.steps}, temperature 0, threshold {args.threshold}")
    warm = {**kw, "gen_length": 2 * args.block_length, "steps": 4}  # 2 blocks x 2 steps: every forward kind
    out: list[dict[str, Any]] = []
    exact_tokens = None
    with torch.inference_mode():
        for mode in modes:
            opts = MODES[mode]
            if opts is None:
                generate_reference(model, ids[:1], mask[:1], **warm)
                tokens, seconds, fwd, peak = _measure(
                    model, device, lambda _: generate_reference(model, ids[:ref_rows], mask[:ref_rows], **kw),
                    hook=True)
                n = ref_rows
            else:
                extra = {**opts, "threshold": args.threshold, "eos_id": int(cfg.eos_token_id)}
                _, compile_s, _ = _timed(device, lambda e=extra: generate(model, ids[:2], mask[:2], **warm, **e))
                if opts.get("compile"):
                    print(f"{mode}: warm-up with compilation {compile_s:.1f} s (not in the table)")
                tokens, seconds, fwd, peak = _measure(
                    model, device, lambda st, e=extra: generate(model, ids, mask, **kw, **e, stats=st),
                    compiled=bool(opts.get("compile")))
                n = args.batch_size
            row = {"mode": mode, "rows": n, "concurrent_rows": 1 if opts is None else n, "seconds": seconds,
                   "tokens_per_s": n * args.gen_length / seconds, "forwards_per_completion": fwd / n,
                   "peak_bytes": peak}
            if mode == "exact":
                exact_tokens = tokens
            out.append((row, tokens))
    rows = []
    ref_tokens = out[0][1]
    for row, tokens in out:
        if exact_tokens is not None and row["mode"] != "exact":
            k = min(len(tokens), len(exact_tokens))
            row["agreement"] = float((tokens[:k, -args.gen_length:] == exact_tokens[:k, -args.gen_length:])
                                     .float().mean())
        elif row["mode"] == "exact":
            row["agreement"] = 1.0
        rows.append(row)
    if exact_tokens is not None:
        ref_agree = float((exact_tokens[:ref_rows] == ref_tokens).float().mean())
        check = args.float64_check == "yes" or (args.float64_check == "auto" and device.type == "cpu")
        exact64 = _float64_exact(model, ids[:ref_rows], mask[:ref_rows], kw) if check else None
        rows[0]["agreement"] = ref_agree
        next(r for r in rows if r["mode"] == "exact")["exact_float64"] = bool(exact64) if check else True
    _print_table(rows, with_accuracy=False)
    if exact_tokens is not None:
        print(f"exact vs reference: {100 * ref_agree:.2f}% of tokens equal in {next(model.parameters()).dtype}; "
              f"float64: {'identical' if exact64 else 'NOT identical' if check else 'not checked'}")
    return rows


def _run_checkpoint(args: argparse.Namespace, modes: list[str], device: Any) -> list[dict[str, Any]]:
    """Setting (b): a trained checkpoint on its task's test split, every mode with its accuracy."""
    import torch

    from spg_lib.decoding import generate, generate_reference
    from spg_lib.models import load_model, load_tokenizer
    from spg_lib.pipeline.config import load_pipeline_config
    from spg_lib.tasks.evaluate import encode_prompts, evaluate_model
    from spg_lib.tasks.registry import get_task

    ev = load_pipeline_config(args.config, args.override).evaluate
    task = get_task(ev.task)
    examples = task.load_split(ev.data or task.default_source("test"), "test")[: args.limit]
    model = load_model(args.checkpoint, device=device).eval()
    tok = load_tokenizer(args.checkpoint)
    ev = dataclasses.replace(ev, progress=False, threshold=args.threshold)
    print(f"(b) model: {args.checkpoint}, task {task.name}, {len(examples)} test examples, evaluate section of "
          f"{args.config}: gen {ev.gen_length}, block {ev.block_length}, steps {ev.steps}, batch {ev.batch_size}, "
          f"prompts {ev.prompt_style}; device {device}, threads {torch.get_num_threads()}")
    rows = []
    exact_acc = None
    for mode in modes:
        opts = MODES[mode]
        if opts is None:
            continue
        cfg = dataclasses.replace(ev, **{"cache": "none", "unmasking": "schedule", "early_stop": False,
                                         "compile": False, **opts})
        if opts.get("compile"):
            _, compile_s, _ = _timed(device, lambda c=cfg: evaluate_model(model, tok, task, examples[:2], c))
            print(f"{mode}: warm-up with compilation {compile_s:.1f} s (not in the table)")
        (records, metrics), seconds, fwd, peak = _measure(
            model, device, lambda st, c=cfg: evaluate_model(model, tok, task, examples, c, stats=st),
            compiled=cfg.compile)
        rows.append({"mode": mode, "rows": len(examples), "concurrent_rows": min(ev.batch_size, len(examples)),
                     "seconds": seconds,
                     "tokens_per_s": len(examples) * ev.gen_length / seconds,
                     "forwards_per_completion": fwd / len(examples), "peak_bytes": peak,
                     "accuracy": metrics.accuracy, "exact_match": metrics.exact_match,
                     "completions": [r["completion"] for r in records]})
        if mode == "exact":
            exact_acc = metrics.accuracy
    # the reference on the first --ref-rows prompts (its tokens equal the exact sampler's: checked here)
    enc = encode_prompts(tok, task, examples[: args.ref_rows], ev.prompt_style, ev.add_special_tokens)
    width = max(len(e) for e in enc)
    pad = tok.pad_token_id if tok.pad_token_id is not None else int(model.config.pad_token_id)
    ids = torch.full((len(enc), width), pad, dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for r, e in enumerate(enc):
        ids[r, width - len(e):] = torch.tensor(e)
        mask[r, width - len(e):] = 1
    ids, mask = ids.to(device), mask.to(device)
    kw = {"gen_length": ev.gen_length, "block_length": ev.block_length, "steps": ev.steps,
          "mask_id": int(model.config.mask_token_id), "temperature": 0.0}
    with torch.inference_mode():
        ref, seconds, fwd, peak = _measure(model, device, lambda _: generate_reference(model, ids, mask, **kw),
                                           hook=True)
        same = torch.equal(ref, generate(model, ids, mask, **kw))
    rows.insert(0, {"mode": "reference", "rows": len(enc), "concurrent_rows": 1, "seconds": seconds,
                    "tokens_per_s": len(enc) * ev.gen_length / seconds, "forwards_per_completion": fwd / len(enc),
                    "peak_bytes": peak, "accuracy": None, "agreement": 1.0 if same else 0.0})
    exact = next((r for r in rows if r["mode"] == "exact"), None)
    for r in rows[1:]:
        if exact is not None:
            r["agreement"] = sum(a == b for a, b in zip(r["completions"], exact["completions"], strict=True)) / len(
                examples)
    _print_table(rows, with_accuracy=True)
    print(f"reference = exact on {len(enc)} rows: {'yes' if same else 'NO'}; '= exact' here is the share of "
          f"completions identical to the exact sampler's; accuracy of the reference = the exact sampler's "
          f"({exact_acc if exact_acc is not None else 'n/a'})")
    for r in rows:
        r.pop("completions", None)
    rows[1 if exact is not None else 0]["exact_float64"] = same
    return [json.loads(json.dumps(r)) for r in rows]
