"""spg_lib.bench.likelihood: the fast and the official-style baseline step compute the same loss and gradients,
and the benchmark prints its figures ending with the `speedup: … memory_ratio: …` line."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from spg_lib.bench import likelihood as bench


@pytest.fixture(scope="module")
def tiny_model():
    models = pytest.importorskip("spg_lib.models")
    return models.init_tiny_model(seed=0)


def test_fast_and_baseline_agree_on_tiny_llada(tiny_model) -> None:
    from spg_lib.algos.masking import forward_process

    model = tiny_model
    mask_id = int(model.config.mask_token_id)
    B, m, P, L = 3, 2, 4, 16
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 60, (B, P + L), generator=g)
    cmask = torch.arange(L).unsqueeze(0) < torch.tensor([[16], [9], [3]])
    adv = torch.tensor([0.5, -0.2, -0.3])
    noisy = forward_process("block_random", ids, cmask, prompt_len=P, mask_id=mask_id, num_mc=m, block_length=4,
                            generator=g).noisy
    kw = dict(prompt_len=P, mask_id=mask_id, beta=1.5, omega=0.5, chunk_size=7)
    grads = []
    for fn in (bench._fast_loss, bench._baseline_loss):
        model.zero_grad(set_to_none=True)
        loss = fn(model, noisy, ids, cmask, adv, **kw)
        loss.backward()
        grads.append((float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (l_fast, g_fast), (l_base, g_base) = grads
    assert abs(l_fast - l_base) < 1e-6
    assert len(g_fast) == len(g_base)
    for a, b in zip(g_fast, g_base):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    model.zero_grad(set_to_none=True)


def _args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(["--batch-size", "2", "--gen-length", "8", "--prompt-length", "2", "--block-length",
                              "4", "--repeats", "1", "--chunk-size", "16", *extra])


@pytest.mark.parametrize("variant", ["fast", "baseline"])
def test_worker_reports_json(variant: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("spg_lib.models")
    assert bench.run(_args("--worker", variant)) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["variant"] == variant and record["time_s"] > 0 and record["peak_mib"] >= 0
    assert math.isfinite(record["loss"]) and math.isfinite(record["grad_norm"])


def test_benchmark_prints_ratio_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = {"fast": {"time_s": 1.0, "peak_mib": 100.0}, "baseline": {"time_s": 2.5, "peak_mib": 400.0}}
    calls = []

    def run_worker(variant: str, argv: list[str]) -> dict:
        calls.append(argv)
        return {"variant": variant, "peak_reset": True, "loss": 0.5, "grad_norm": 1.0, "vocab": 103, "d_model": 128,
                "n_layers": 6, **fake[variant]}

    monkeypatch.setattr(bench, "_run_worker", run_worker)
    assert bench.run(_args()) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "speedup: 2.50 memory_ratio: 0.25"
    assert "loss difference: 0.00e+00" in out
    assert calls[0][:2] == ["--batch-size", "2"]
    with pytest.raises(ValueError, match="block-length"):
        bench.run(_args("--gen-length", "10"))
