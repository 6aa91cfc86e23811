"""Two CPU processes (gloo) stay in sync and equal one process with the same global batch; a 2-process run
resumed from a mid-rollout checkpoint equals the uninterrupted one (per-rank rollout buffers and RNG states)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]


def _run(nproc: int, out: Path, grad_accum: int, *mode: str) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with socket.socket() as sock:  # a free loopback port for the c10d rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [torchrun, "--nproc_per_node", str(nproc), "--rdzv-backend", "c10d",
           "--rdzv-endpoint", f"127.0.0.1:{port}", str(ROOT / "tests/training/ddp_worker.py"),
           str(out), str(grad_accum), *mode]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    _run(2, tmp_path / "ddp", grad_accum=1)
    _run(1, tmp_path / "single", grad_accum=2)
    r0 = load_file(str(tmp_path / "ddp/rank0_of_2.safetensors"))
    r1 = load_file(str(tmp_path / "ddp/rank1_of_2.safetensors"))
    single = load_file(str(tmp_path / "single/rank0_of_1.safetensors"))
    for name in r0:
        torch.testing.assert_close(r0[name], r1[name], rtol=0, atol=0)  # ranks identical
        torch.testing.assert_close(r0[name], single[name], rtol=1e-5, atol=1e-6)  # = single process
    from spg_lib.models import init_tiny_model

    init = dict(init_tiny_model(seed=0).named_parameters())
    assert any(not torch.allclose(init[n], r0[n]) for n in r0), "training changed nothing"


@pytest.mark.slow
def test_two_process_resume_mid_rollout_is_exact(tmp_path):
    _run(2, tmp_path, 1, "resume")
    for rank in (0, 1):
        straight = load_file(str(tmp_path / f"rank{rank}_of_2_straight.safetensors"))
        resumed = load_file(str(tmp_path / f"rank{rank}_of_2_resumed.safetensors"))
        assert straight.keys() == resumed.keys() and straight
        for name in straight:
            torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0)
