"""`spg bench rl-stability` end to end on a shrunk run: both trainings from one checkpoint, the table, the JSON
and the PNG. Whether the fast run keeps the gain is a benchmark result (benchmarks/RESULTS.md), not asserted."""

import json

from spg_lib.cli import main

SHRUNK = ["train.max_steps=2", "train.prompts_per_step=2", "train.num_generations=2", "train.rollout.batch_size=4",
          "train.algo.num_iterations=1", "train.checkpoint_every=0", "evaluate.limit=4", "evaluate.batch_size=4"]


def test_both_runs_table_json_png(tmp_path, capsys):
    from spg_lib.models.loading import save_model_dir
    from spg_lib.storage import fetch_checkpoint

    base = fetch_checkpoint("builtin:tiny", tmp_path / "base", write_builtin=save_model_dir)
    data = tmp_path / "data"
    assert main(["prepare-data", "--config", "params.yaml", "-o", f"data.out_dir={data}", "-o", "data.n_train=16"]) == 0
    argv = ["bench", "rl-stability", "--config", "params.yaml", "--base", str(base), "--out", str(tmp_path / "o"),
            "-o", f"train.train_data={data}/train.jsonl", "-o", f"evaluate.data={data}/test.jsonl"]
    for item in SHRUNK:
        argv += ["-o", item]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| exact" in text or "exact " in text
    record = json.loads((tmp_path / "o" / "rl_stability.json").read_text())
    assert [r["label"] for r in record["runs"]] == ["exact", "fast"]
    assert record["fast_overrides"][0] == "train.rollout.cache=dual"
    assert all(len(r["curve"]) == 2 and r["wall_time_s"] > 0 for r in record["runs"])
    assert (tmp_path / "o" / "reward_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_base_is_one_line(tmp_path, capsys):
    assert main(["bench", "rl-stability", "--base", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint there" in err[0]
