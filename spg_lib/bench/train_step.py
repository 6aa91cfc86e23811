"""`spg bench train-step`: time, peak memory and MFU of one SPG optimizer step on a fixed rollout buffer.

    spg bench train-step                                             # tiny LLaDA on CPU, float32
    spg bench train-step --shape tiny --batch 2 --prompt-length 16 --gen-length 64 --steps 1
    spg bench train-step --shape llada-8b --batch 6 --prompt-length 200 --gen-length 256 --json $OUT/ts.json

The rollout is excluded: a synthetic buffer (random prompt + completion ids, completion lengths L/4..L with the
EOS convention, group-centred advantages of random rewards) is built once, and every timed step runs on it.
Two phases are timed on the same buffer, each after ``--warmup`` untimed repeats:

- ``loss fwd+bwd``: the registered method's estimate and loss (``spg_lib.training.objective.estimate`` /
  ``method_loss``: SPG = block masking, one trunk forward over all B·m noisy copies, ELBO / EUBO / Mixture)
  and ``backward``;
- ``optimizer step``: ``Trainer.optimizer_step`` itself (the same loss path, gradient clipping, AdamW).

Model FLOPs (PaLM convention: no recomputation, no optimizer or element-wise work; backward = 2 × forward for
a trained weight, 1 × for a frozen one, which still passes its input gradient). Counted per forward pass from
the actual calls (hooks on every linear layer of the trunk, on every attention block and on the final norm):

    linear   3 · 2·rows·in·out           (trained weight; frozen: 2 · 2·rows·in·out)
    attention 3 · 4·B·H·Q·K·hd           (QKᵀ and AV; Q queries, K keys)
    head     3 · 2·D·E·h                  (h = B·L completion positions per trunk forward; frozen head: 2·)

For full fine-tuning of a LLaDA model with n = B·m·T trunk tokens this sums to the closed form
(``train_step_flops``)

    FLOPs = 6·N·n + 12·n_layers·D·T·n + 6·D·E·B·m·L,   N = n_layers·(2·D² + 2·D·D_kv + 3·D·F)

(N: non-embedding matmul parameters of the blocks; D_kv = n_kv_heads·head_dim; F: MLP hidden size; E: logits
width). Achieved TFLOP/s = FLOPs / time; MFU = achieved / the best square-matmul TFLOP/s measured in the same
run (``--matmul-sizes``, working dtype), so the ratio is to this machine's measured peak, not a datasheet.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over each phase's timed steps (weights, gradients and
optimizer state included) and its increase over the allocation before them; on CPU the increase of the peak
resident set (VmHWM, reset after the warm-up) over the resident set before the timed steps. The GPU is
synchronised only at the edges of timed regions; every random draw has its own seeded ``torch.Generator``.

``--shape llada-8b`` is the LLaDA-8B architecture (``LLaDAConfig()`` defaults: d_model 4096, 32 layers, 32
heads, MLP 12288, vocabulary 126464; ≈ 8.0 B parameters) with random weights, no download; full fine-tuning
needs ≈ 64 GB for bf16 weights, gradients and AdamW state before activations, so it is refused on a CPU
unless ``--allow-cpu``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import torch

from spg_lib.bench.memory import reset_cpu_peak, status_kib
from spg_lib.io import InputError, atomic_write_text
from spg_lib.models.configuration_llada import LLaDAConfig

SHAPES = ("tiny", "llada-8b")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shape", choices=SHAPES, default="tiny",
                        help="model architecture: tiny (CPU) | llada-8b (LLaDA-8B, random weights, GPU)")
    parser.add_argument("--batch", type=int, default=6, help="rows B of the micro-batch (one group; default 6)")
    parser.add_argument("--prompt-length", type=int, default=64, help="prompt tokens P (default 64)")
    parser.add_argument("--gen-length", type=int, default=256, help="completion length L (default 256)")
    parser.add_argument("--block-length", type=int, default=32, help="block size K of block masking (default 32)")
    parser.add_argument("--num-mc", type=int, default=2, help="MC samples m per row (default 2)")
    parser.add_argument("--method", default="spg", help="registered method (default spg)")
    parser.add_argument("--mode", choices=("fixed", "faithful"), default="fixed", help="algo.mode (default fixed)")
    parser.add_argument("--steps", type=int, default=3, help="timed repeats of each phase after warm-up (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repeats before timing (default 1)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="weights and compute dtype (default: bfloat16 on CUDA, float32 on CPU)")
    parser.add_argument("--grad-checkpointing", action="store_true", help="recompute each block in backward")
    parser.add_argument("--lora", action="store_true",
                        help="train a LoRA adapter (train.lora defaults) on a frozen base instead of every weight")
    parser.add_argument("--chunk-size", type=int, default=256, help="positions per output-head chunk (default 256)")
    parser.add_argument("--matmul-sizes", default=None,
                        help="comma-separated square matmul sizes for the peak (default: 256,512,1024 on CPU; "
                             "2048,4096,8192 on CUDA)")
    parser.add_argument("--allow-cpu", action="store_true", help="run --shape llada-8b on a CPU anyway")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and of the synthetic buffer")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")


# --------------------------------------------------------------------------------------------------
# shapes, parameter and FLOP arithmetic
# --------------------------------------------------------------------------------------------------


def shape_config(shape: str) -> LLaDAConfig:
    """The LLaDA config of ``shape``: tiny (``tiny_config()``) or llada-8b (``LLaDAConfig()``, the 8B defaults)."""
    if shape == "tiny":
        from spg_lib.models.tiny import tiny_config

        return tiny_config()
    if shape == "llada-8b":
        return LLaDAConfig(init_device="meta")
    raise InputError(f"--shape: unknown shape {shape!r}; valid: {list(SHAPES)}")


def block_matmul_params(cfg: LLaDAConfig) -> int:
    """N = n_layers·(2·D² + 2·D·D_kv + 3·D·F): q/attn_out, k/v and the gated MLP of every block (bias-free)."""
    D, kv = cfg.d_model, cfg.effective_n_kv_heads * cfg.head_dim
    return cfg.n_layers * (2 * D * D + 2 * D * kv + 3 * D * cfg.mlp_hidden)


def param_count(cfg: LLaDAConfig) -> int:
    """Parameters of ``LLaDAModelLM(cfg)`` without building it: embedding, blocks, norms, head, biases."""
    D, kv, F, E = cfg.d_model, cfg.effective_n_kv_heads * cfg.head_dim, cfg.mlp_hidden, cfg.padded_vocab_size
    bias, qkv_bias = bool(cfg.include_bias), bool(cfg.include_bias or cfg.include_qkv_bias)
    norm = D * (int(cfg.layer_norm_with_affine) + int(cfg.norm_bias))
    block = (2 * D * D + 2 * D * kv + 3 * D * F + 2 * norm + qkv_bias * (D + 2 * kv) + bias * (D + 2 * F + D))
    head = 0 if cfg.weight_tying else E * D + bias * E
    return E * D + cfg.n_layers * block + norm + head


def train_step_flops(cfg: LLaDAConfig, *, rows: int, num_mc: int, prompt_length: int, gen_length: int) -> dict:
    """Model FLOPs of one full-fine-tuning step: 6·N·n + 12·n_layers·D·T·n + 6·D·E·B·m·L (module docstring).

    Returns a dict with the three terms (``linear``, ``attention``, ``head``) and their ``total``.
    """
    T = prompt_length + gen_length
    n = rows * num_mc * T  # trunk tokens
    D = cfg.n_heads * cfg.head_dim
    linear = 6 * block_matmul_params(cfg) * n
    attention = 12 * cfg.n_layers * D * T * n
    head = 6 * cfg.d_model * cfg.padded_vocab_size * rows * num_mc * gen_length
    return {"linear": linear, "attention": attention, "head": head, "total": linear + attention + head}


class FlopCounter:
    """Counts model FLOPs (forward + backward, module docstring) from the forward calls made while ``active``.

    Hooks: every ``nn.Linear`` inside the transformer blocks (LoRA adapters included; frozen weights count
    2× their forward, trained ones 3×), every attention block (4·B·H·Q·K·hd forward, 3×), and the final norm
    (one trunk forward of B rows: the head then runs on their B·L completion positions). Recomputation under
    gradient checkpointing happens in backward, outside ``active``, and is not counted.
    """

    def __init__(self, model: torch.nn.Module, gen_length: int):
        from spg_lib.models.modeling_llada import LLaDABlock

        self.gen_length = gen_length
        self.active = False
        self.flops = {"linear": 0, "attention": 0, "head": 0}
        self.trunk_forwards = 0
        self.trunk_tokens = 0
        head = model.get_output_embeddings()
        self._head = (int(head.weight.shape[1]) * int(head.weight.shape[0]),
                      3 if head.weight.requires_grad else 2)  # (D·E, backward factor)
        self._handles = []
        for name, mod in model.named_modules():
            if isinstance(mod, LLaDABlock):
                self._handles.append(mod.register_forward_pre_hook(self._attention))
            elif isinstance(mod, torch.nn.Linear) and ".blocks." in f".{name}":
                self._handles.append(mod.register_forward_pre_hook(self._linear))
            elif name.endswith("transformer.ln_f"):
                self._handles.append(mod.register_forward_pre_hook(self._trunk))
        if not self._handles:
            raise ValueError("FlopCounter: no LLaDA blocks found in the model")

    def _linear(self, mod: torch.nn.Linear, args: tuple) -> None:
        if self.active:
            rows = args[0].numel() // mod.in_features
            self.flops["linear"] += (3 if mod.weight.requires_grad else 2) * 2 * rows * mod.in_features * \
                mod.out_features

    def _attention(self, mod: torch.nn.Module, args: tuple) -> None:
        if self.active:
            x = args[0]  # [B, T, D]; optional 5th argument query_range (s, e)
            B, K = x.shape[0], x.shape[1]
            qr = args[4] if len(args) > 4 else None
            Q = K if qr is None else qr[1] - qr[0]
            self.flops["attention"] += 3 * 4 * B * mod.n_heads * Q * K * mod.head_dim

    def _trunk(self, mod: torch.nn.Module, args: tuple) -> None:
        if self.active:
            B = args[0].shape[0]
            self.trunk_forwards += 1
            self.trunk_tokens += B * args[0].shape[1]
            de, factor = self._head
            self.flops["head"] += factor * 2 * de * B * self.gen_length

    @property
    def total(self) -> int:
        return sum(self.flops.values())

    @contextlib.contextmanager
    def counting(self) -> Iterator[FlopCounter]:
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


# --------------------------------------------------------------------------------------------------
# matmul peak, memory, model and buffer
# --------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, sizes: list[int], seed: int = 0,
                min_time_s: float = 0.2) -> dict[int, float]:
    """Best-of TFLOP/s of ``a @ b`` for square [n, n] operands per size n (2·n³ FLOPs per product)."""
    g = torch.Generator(device=device).manual_seed(seed)
    out = {}
    for n in sizes:
        a = torch.randn(n, n, generator=g, device=device, dtype=dtype)
        b = torch.randn(n, n, generator=g, device=device, dtype=dtype)
        c = torch.empty(n, n, device=device, dtype=dtype)
        torch.matmul(a, b, out=c)  # warm-up (kernel selection)
        best = 0.0
        reps, spent = 1, 0.0
        while spent < min_time_s:
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.matmul(a, b, out=c)
            _sync(device)
            dt = time.perf_counter() - t0
            spent += dt
            best = max(best, 2 * n**3 * reps / dt / 1e12)
            reps *= 2
        out[n] = best
        del a, b, c
    return out





def build_model(cfg: LLaDAConfig, device: torch.device, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    """``LLaDAModelLM(cfg)`` with random weights (``init_weights_``, own generator) allocated on ``device``."""
    from spg_lib.models.modeling_llada import LLaDAModelLM, init_weights_

    with torch.device("meta"):  # no allocation, no global-RNG initialisers
        model = LLaDAModelLM(cfg)
    model = model.to(dtype).to_empty(device=device)
    init_weights_(model, std=cfg.init_std, n_layers=cfg.n_layers,
                  generator=torch.Generator(device=device).manual_seed(seed))
    return model


def synthetic_microbatch(cfg: LLaDAConfig, *, rows: int, prompt_length: int, gen_length: int,
                         device: torch.device, seed: int):
    """A rollout micro-batch: random non-special ids [B, P+L], lengths L/4..L (EOS after), centred advantages."""
    from spg_lib.algos import MicroBatch, group_center

    g = torch.Generator().manual_seed(seed)
    special = torch.tensor([cfg.mask_token_id, cfg.eos_token_id, cfg.pad_token_id])
    V = cfg.vocab_size
    ids = torch.randint(0, V - len(special), (rows, prompt_length + gen_length), generator=g)
    for s in special.sort().values.tolist():  # shift past each special id: no special token in the text
        ids = ids + (ids >= s).long()
    lengths = torch.randint(max(1, gen_length // 4), gen_length + 1, (rows,), generator=g)
    lengths[0] = gen_length  # one completion without EOS
    cmask = torch.arange(gen_length).unsqueeze(0) < lengths.unsqueeze(1)  # [B, L]
    comp = ids[:, prompt_length:]
    comp[~cmask] = cfg.eos_token_id
    adv = group_center(torch.rand(rows, generator=g), group_size=rows)
    att = torch.ones_like(ids)  # prompts fill P (no left padding)
    return MicroBatch(ids.to(device), att.to(device), prompt_length, cmask.to(device), adv.to(device),
                      torch.rand(rows, generator=g).to(device))


# --------------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Phase:
    name: str
    times_s: list[float]
    peak_bytes: int
    before_bytes: int

    @property
    def time_s(self) -> float:
        return statistics.median(self.times_s)


def _check_args(args: argparse.Namespace) -> None:
    for name in ("batch", "gen_length", "block_length", "num_mc", "steps", "chunk_size"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.batch < 2:
        raise InputError(f"--batch must be >= 2 (group advantages need a group), got {args.batch}")
    if args.prompt_length < 1:
        raise InputError(f"--prompt-length must be >= 1, got {args.prompt_length}")
    if args.warmup < 0:
        raise InputError(f"--warmup must be >= 0, got {args.warmup}")
    if args.gen_length % args.block_length:
        raise InputError(f"--block-length ({args.block_length}) must divide --gen-length ({args.gen_length})")


def _resolve(args: argparse.Namespace) -> tuple[torch.device, torch.dtype, list[int]]:
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as exc:
        raise InputError(f"--device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device: only cpu and cuda are supported, got {device}")
    if args.shape == "llada-8b" and device.type == "cpu" and not args.allow_cpu:
        raise InputError("--shape llada-8b needs a GPU (~64 GB of bf16 weights, gradients and AdamW state before "
                         "activations); pass --allow-cpu to run it on a CPU anyway")
    dtype = DTYPES[args.dtype or ("bfloat16" if device.type == "cuda" else "float32")]
    default_sizes = "256,512,1024" if device.type == "cpu" else "2048,4096,8192"
    try:
        sizes = [int(s) for s in (args.matmul_sizes or default_sizes).split(",")]
    except ValueError:
        raise InputError(f"--matmul-sizes: comma-separated integers expected, got {args.matmul_sizes!r}") from None
    if not sizes or min(sizes) < 1:
        raise InputError(f"--matmul-sizes: sizes must be >= 1, got {args.matmul_sizes!r}")
    return device, dtype, sizes


def _train_config(args: argparse.Namespace, dtype: torch.dtype):
    from spg_lib.algos import AlgoConfig
    from spg_lib.training.config import LoRASettings, RolloutConfig, TrainConfig

    algo = AlgoConfig(name=args.method, mode=args.mode, gen_length=args.gen_length, block_length=args.block_length,
                      num_mc=args.num_mc, num_iterations=1)
    return TrainConfig(algo=algo, rollout=RolloutConfig(steps=max(128, algo.num_blocks)),
                       lora=LoRASettings(enabled=bool(args.lora)), num_generations=args.batch, prompts_per_step=1,
                       grad_accum=1, chunk_size=args.chunk_size,
                       dtype="bfloat16" if dtype == torch.bfloat16 else "float32")


def _timed_phase(name: str, fn, *, steps: int, warmup: int, device: torch.device) -> Phase:
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        reset_cpu_peak()
        before = status_kib("VmRSS") * 1024
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else status_kib("VmHWM") * 1024
    return Phase(name, times, peak, before)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark described by ``args`` (the CLI options) and return every figure as a dict."""
    from accelerate import Accelerator

    from spg_lib.training.objective import estimate, method_loss
    from spg_lib.training.run import wrap_lora
    from spg_lib.training.trainer import Rollout, Trainer

    _check_args(args)
    device, dtype, sizes = _resolve(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = shape_config(args.shape)
    tcfg = _train_config(args, dtype)  # validates method, num_mc vs blocks, ...
    model = build_model(cfg, device, dtype, args.seed)
    if args.grad_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = wrap_lora(model, tcfg.lora)
    n_params = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    mb = synthetic_microbatch(cfg, rows=args.batch, prompt_length=args.prompt_length, gen_length=args.gen_length,
                              device=device, seed=args.seed + 1)
    tokenizer = SimpleNamespace(mask_token_id=cfg.mask_token_id, eos_token_id=cfg.eos_token_id)
    acc = Accelerator(cpu=device.type == "cpu", gradient_accumulation_steps=1)
    trainer = Trainer(tcfg, model, tokenizer, [{}], task=None, accelerator=acc, prompt_fn=lambda ex: "")
    ro = Rollout([mb], {}, tokens=float(mb.completion_mask.sum()))
    counter = FlopCounter(model, args.gen_length)
    mask_gen = torch.Generator(device=device)

    def loss_fwd_bwd(count: bool = False) -> None:
        trainer.model.train()
        model.zero_grad(set_to_none=True)
        mask_gen.manual_seed(args.seed + 2)
        with counter.counting() if count else contextlib.nullcontext():
            est = estimate(trainer.model, mb, tcfg.algo, mask_id=cfg.mask_token_id, generator=mask_gen,
                           chunk_size=tcfg.chunk_size)
            loss, _ = method_loss(est, mb, tcfg.algo)
        loss.backward()

    def optimizer_step() -> None:
        trainer.optimizer_step(ro, 0)

    peak = matmul_peak(device, dtype, sizes, seed=args.seed)
    best = max(peak.values())
    loss_fwd_bwd(count=True)  # the FLOP count (one step's forward calls), also a warm-up
    flops = dict(counter.flops)
    counted = counter.total
    trunk_forwards = counter.trunk_forwards
    trunk_tokens = counter.trunk_tokens
    counter.remove()
    phases = [_timed_phase("loss fwd+bwd", loss_fwd_bwd, steps=args.steps, warmup=args.warmup, device=device)]
    model.zero_grad(set_to_none=True)
    phases.append(_timed_phase("optimizer step", optimizer_step, steps=args.steps, warmup=max(args.warmup, 1),
                               device=device))
    formula = train_step_flops(cfg, rows=args.batch, num_mc=args.num_mc, prompt_length=args.prompt_length,
                               gen_length=args.gen_length)
    rows = []
    for ph in phases:
        achieved = counted / ph.time_s / 1e12
        rows.append({"phase": ph.name, "time_s": ph.time_s, "times_s": ph.times_s, "tflops": achieved,
                     "mfu": achieved / best, "peak_bytes": ph.peak_bytes, "before_bytes": ph.before_bytes,
                     "increase_bytes": max(ph.peak_bytes - ph.before_bytes, 0)})
    return {
        "shape": args.shape, "device": str(device), "dtype": str(dtype).removeprefix("torch."),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(), "params": n_params, "params_formula": param_count(cfg),
        "trainable_params": n_trainable, "lora": bool(args.lora), "grad_checkpointing": bool(args.grad_checkpointing),
        "method": tcfg.algo.name, "mode": tcfg.algo.mode, "batch": args.batch, "num_mc": args.num_mc,
        "prompt_length": args.prompt_length, "gen_length": args.gen_length, "block_length": args.block_length,
        "steps": args.steps, "warmup": args.warmup, "trunk_forwards": trunk_forwards, "trunk_tokens": trunk_tokens,
        "flops_counted": counted, "flops_counted_terms": flops, "flops_formula": formula,
        "matmul_tflops": {str(k): v for k, v in peak.items()}, "matmul_peak_tflops": best, "phases": rows,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _count(n: int) -> str:
    return f"{n / 1e9:,.3f} B" if n >= 1e9 else f"{n / 1e6:,.3f} M"


def _mib(b: int) -> str:
    return f"{b / 2**20:,.1f} MiB"


def format_table(r: dict[str, Any]) -> str:
    """The printed report: setup lines, the FLOP count, the matmul peak and one table row per phase."""
    mem = "CUDA allocator peak (increase over the allocation before the timed steps)" if r["device"] != "cpu" \
        else "CPU peak RSS increase over the RSS before the timed steps (VmHWM)"
    train = (f"LoRA adapter ({r['trainable_params'] / 1e6:,.2f} M trained)" if r["lora"]
             else "full fine-tuning")
    lines = [
        f"train-step benchmark: shape {r['shape']} ({_count(r['params'])} params), {train}, device "
        f"{r['device']}{' (' + r['gpu'] + ')' if r['gpu'] else ''}, {r['dtype']}, threads {r['threads']}, "
        f"grad checkpointing {'on' if r['grad_checkpointing'] else 'off'}",
        f"buffer: batch {r['batch']} x num_mc {r['num_mc']}, prompt {r['prompt_length']} + gen {r['gen_length']}, "
        f"block {r['block_length']}, method {r['method']} ({r['mode']}); rollout excluded; median of {r['steps']} "
        f"timed steps after {r['warmup']} warm-up",
        f"model FLOPs per step: {r['flops_counted'] / 1e9:,.3f} GFLOP counted ({r['trunk_forwards']} trunk "
        f"forward(s), {r['trunk_tokens']} tokens; linear {r['flops_counted_terms']['linear'] / 1e9:,.3f}, attention "
        f"{r['flops_counted_terms']['attention'] / 1e9:,.3f}, head {r['flops_counted_terms']['head'] / 1e9:,.3f}); "
        f"full-FT formula 6·N·n + 12·n_layers·D·T·n + 6·D·E·B·m·L = {r['flops_formula']['total'] / 1e9:,.3f} GFLOP",
        "matmul peak (" + r["dtype"] + "): " + ", ".join(f"{k}: {v:.3f}" for k, v in r["matmul_tflops"].items())
        + f" TFLOP/s; best {r['matmul_peak_tflops']:.3f} TFLOP/s",
        f"memory: {mem}",
        "",
        f"| {'phase':<15}| {'time/step':>11} | {'achieved':>16} | {'MFU (÷ peak)':>12} | {'peak memory':>14} | "
        f"{'increase':>14} |",
        f"|{'-' * 16}|{'-' * 13}|{'-' * 18}|{'-' * 14}|{'-' * 16}|{'-' * 16}|",
    ]
    for p in r["phases"]:
        peak = _mib(p["peak_bytes"]) if r["device"] != "cpu" else "-"
        lines.append(f"| {p['phase']:<15}| {p['time_s']:>9.4f} s | {p['tflops']:>8.4f} TFLOP/s | {p['mfu']:>12.3f} | "
                     f"{peak:>14} | {_mib(p['increase_bytes']):>14} |")
    lines.append("")
    lines.append(f"mfu: {r['phases'][0]['mfu']:.3f} (loss fwd+bwd) {r['phases'][1]['mfu']:.3f} (optimizer step)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    result = measure(args)
    print(format_table(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
