"""`spg evaluate` end to end on the tiny model (CPU, 4 prompts, 16 tokens)."""

import json

from spg_lib.cli import main
from spg_lib.tasks import get_task
from spg_lib.tasks.metrics import EvalProtocol, examples_hash, read_metrics
from tests.shared_data import DATA


def test_evaluate_tiny_gsm8k(tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main([
        "evaluate", "--model", "builtin:tiny", "--task", "gsm8k",
        "--data", str(DATA / "gsm8k_test.jsonl"), "--limit", "4", "--batch-size", "2",
        "--gen-length", "16", "--steps", "8", "--block-length", "8", "--out-dir", str(out), "--no-progress",
    ])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "gsm8k" and metrics["n"] == 4
    # the one schema: read back as written, protocol with the content hash of the 4 examples evaluated
    written = read_metrics(out / "metrics.json")
    assert written.as_dict() == metrics
    examples = get_task("gsm8k").load_split(str(DATA / "gsm8k_test.jsonl"), "test")[:4]
    assert written.protocol == EvalProtocol(task="gsm8k", data_hash=examples_hash(examples), n=4, prompt_style="paper",
                                            mode="fixed", gen_length=16, block_length=8, steps=8, temperature=0.0,
                                            remasking="low_confidence", redecode_earlier_masks=False)
    assert 0.0 <= metrics["accuracy"] <= 100.0 and metrics["tokens_per_s"] > 0
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    assert {"question", "completion", "ground_truth", "extracted", "correct"} <= set(rows[0])
    assert rows[0]["ground_truth"] == "18"  # input order kept despite length-sorted batching
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    # the written generations re-score to the same accuracy
    assert main(["score", "--task", "gsm8k", "--generations", str(out / "generations.jsonl")]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(printed)["accuracy"] == metrics["accuracy"]


def test_evaluate_bad_args(tmp_path, capsys):
    rc = main(["evaluate", "--model", "builtin:tiny", "--task", "gsm8k", "--gen-length", "20",
               "--block-length", "8", "--out-dir", str(tmp_path)])
    assert rc == 2 and "multiple of block_length" in capsys.readouterr().err
