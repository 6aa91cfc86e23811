"""`spg bench train-step`: the tiny shape runs on CPU, FLOP and parameter arithmetic, bad arguments.

Run: ``python -m pytest -q tests/bench/test_train_step.py`` (CPU only, ~20 s).
"""

from __future__ import annotations

import json
import time

import pytest
import torch

from spg_lib.bench.train_step import (
    FlopCounter,
    block_matmul_params,
    matmul_peak,
    param_count,
    shape_config,
    train_step_flops,
)
from spg_lib.cli import main
from spg_lib.models.tiny import init_tiny_model
from spg_lib.training.objective import completion_token_logprobs

TINY_ARGS = ["bench", "train-step", "--shape", "tiny", "--device", "cpu", "--batch", "2", "--prompt-length", "16",
             "--gen-length", "64", "--num-mc", "2", "--steps", "1", "--threads", "1"]


def test_tiny_cpu_one_step_prints_the_table_and_json(tmp_path, capsys):
    out = tmp_path / "ts.json"
    t0 = time.perf_counter()
    rc = main([*TINY_ARGS, "--json", str(out)])
    elapsed = time.perf_counter() - t0
    text = capsys.readouterr().out
    assert rc == 0
    assert elapsed < 15, f"tiny train-step took {elapsed:.1f} s"
    for needle in ("| loss fwd+bwd", "| optimizer step", "TFLOP/s", "MFU", "matmul peak (float32)", "MiB"):
        assert needle in text, needle
    assert text.strip().splitlines()[-1].startswith("wrote ")
    r = json.loads(out.read_text())
    assert r["shape"] == "tiny" and r["device"] == "cpu" and r["dtype"] == "float32"
    assert r["trunk_forwards"] == 1 and r["trunk_tokens"] == 2 * 2 * 80  # one forward over the B·m noisy copies
    assert r["flops_counted"] == r["flops_formula"]["total"] == 3_276_079_104  # full fine-tuning: hooks == formula
    assert [p["phase"] for p in r["phases"]] == ["loss fwd+bwd", "optimizer step"]
    for p in r["phases"]:
        assert p["time_s"] > 0 and p["tflops"] > 0
        assert p["mfu"] == pytest.approx(p["tflops"] / r["matmul_peak_tflops"])
    assert r["params"] == r["params_formula"] == r["trainable_params"]


def test_flop_formula_matches_hand_computed_tiny_values():
    cfg = shape_config("tiny")  # D 128, 6 layers, 4 heads (kv 4), MLP 512, vocabulary 103
    assert block_matmul_params(cfg) == 6 * (2 * 128 * 128 + 2 * 128 * 128 + 3 * 128 * 512) == 1_572_864
    f = train_step_flops(cfg, rows=2, num_mc=2, prompt_length=16, gen_length=64)
    n = 2 * 2 * 80  # trunk tokens B·m·T
    assert f["linear"] == 6 * 1_572_864 * n == 3_019_898_880
    assert f["attention"] == 12 * 6 * 128 * 80 * n == 235_929_600
    assert f["head"] == 6 * 128 * 103 * 2 * 2 * 64 == 20_250_624
    assert f["total"] == 3_276_079_104


def test_flop_counter_counts_calls_and_frozen_weights():
    model = init_tiny_model(seed=0)
    N, P, L = 3, 8, 32
    ids = torch.randint(7, 103, (N, P + L), generator=torch.Generator().manual_seed(0))
    counter = FlopCounter(model, gen_length=L)
    with counter.counting():
        completion_token_logprobs(model, ids, None, ids[:, P:], P)
    full = train_step_flops(model.config, rows=N, num_mc=1, prompt_length=P, gen_length=L)
    assert counter.flops == {k: full[k] for k in ("linear", "attention", "head")}
    completion_token_logprobs(model, ids, None, ids[:, P:], P)  # not counting: unchanged
    assert counter.total == full["total"] and counter.trunk_forwards == 1
    counter.remove()
    for p in model.parameters():
        p.requires_grad_(False)
    frozen = FlopCounter(model, gen_length=L)
    with frozen.counting():
        completion_token_logprobs(model, ids, None, ids[:, P:], P)
    # frozen weights: forward + input gradient (2x), attention still 3x
    assert frozen.flops["linear"] * 3 == full["linear"] * 2
    assert frozen.flops["head"] * 3 == full["head"] * 2
    assert frozen.flops["attention"] == full["attention"]


def test_llada8b_parameter_count_without_allocating():
    cfg = shape_config("llada-8b")
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.mlp_hidden, cfg.padded_vocab_size) == (4096, 32, 32, 12288,
                                                                                             126464)
    emb_and_head = 2 * 126464 * 4096
    block = 4 * 4096 * 4096 + 3 * 4096 * 12288 + 2 * 4096  # q k v attn_out, gated MLP, two RMSNorm weights
    assert param_count(cfg) == emb_and_head + 32 * block + 4096 == 8_015_581_184
    # the formula agrees with the real module on the tiny shape
    assert param_count(shape_config("tiny")) == sum(p.numel() for p in init_tiny_model().parameters())


def test_matmul_peak_is_positive():
    peak = matmul_peak(torch.device("cpu"), torch.float32, [64, 128], min_time_s=0.01)
    assert set(peak) == {64, 128} and min(peak.values()) > 0


@pytest.mark.parametrize("extra, needle", [
    (["--shape", "llada-8b"], "--shape llada-8b needs a GPU"),
    (["--batch", "1"], "--batch must be >= 2"),
    (["--block-length", "48"], "--block-length (48) must divide --gen-length (64)"),
    (["--matmul-sizes", "a,b"], "--matmul-sizes"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--num-mc", "5"], "algo.num_mc"),
    (["--method", "nope"], "algo.name"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, extra, needle):
    rc = main([*TINY_ARGS, *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_bad_device_and_shape_are_usage_errors(capsys):
    assert main([*TINY_ARGS, "--device", "nonsense"]) == 2
    assert "--device" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*TINY_ARGS, "--shape", "llada-70b"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
