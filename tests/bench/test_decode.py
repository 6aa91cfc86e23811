"""`spg bench decode`: one table over every mode on the same prompts, counted token-forwards, exactness in float64;
setting (b) on a checkpoint with accuracy per mode. Figures are not asserted (benchmarks, not timed tests)."""

import json

from spg_lib.cli import main


def test_setting_a_table_counts_and_float64_exactness(tmp_path, capsys):
    out = tmp_path / "a.json"
    rc = main(["bench", "decode", "--batch-size", "3", "--gen-length", "32", "--block-length", "8", "--steps", "16",
               "--ref-rows", "2", "--prompt-length", "16", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    rows = {r["mode"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["reference", "exact", "prefix", "dual", "dual+threshold", "dual+threshold+early-stop"]
    assert rows["exact"]["exact_float64"] is True and "float64: identical" in text
    # counted forwards follow the block arithmetic: dual forwards only the current block after each refresh
    canvas = 16 + 32
    assert rows["exact"]["forwards_per_completion"] <= 16 * canvas
    assert rows["dual"]["forwards_per_completion"] < rows["prefix"]["forwards_per_completion"] < rows["exact"][
        "forwards_per_completion"]
    for name in ("reference", "exact", "dual"):
        assert f"| {name} " in text


def test_setting_b_reports_accuracy_per_mode(tmp_path, capsys):
    from spg_lib.models.loading import save_model_dir
    from spg_lib.storage import fetch_checkpoint

    ckpt = fetch_checkpoint("builtin:tiny", tmp_path / "ckpt", write_builtin=save_model_dir)
    out = tmp_path / "b.json"
    rc = main(["bench", "decode", "--checkpoint", str(ckpt), "--config", "params.yaml", "--limit", "6",
               "-o", "evaluate.data=data/benchmarks/sudoku_4x4_test_spg.csv",  # (data/sudoku is a DVC output)
               "--ref-rows", "2", "--modes", "exact,dual", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    rows = {r["mode"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"reference", "exact", "dual"}
    assert 0.0 <= rows["dual"]["accuracy"] <= 100.0 and rows["exact"]["exact_float64"] is True


def test_unknown_mode_is_one_line(capsys):
    assert main(["bench", "decode", "--modes", "exact,warp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--modes: unknown warp" in err[0]
