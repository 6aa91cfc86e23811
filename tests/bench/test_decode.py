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
    # working memory per row decoded at once: the reference decodes one row at a time, the others the batch
    assert rows["reference"]["concurrent_rows"] == 1 and rows["dual"]["concurrent_rows"] == 3
    assert rows["reference"]["memory_vs_ref"] == 1.0
    for r in rows.values():
        assert r["peak_bytes"] > 0
        assert r["peak_bytes_per_row"] == r["peak_bytes"] / r["concurrent_rows"]


def test_engine_counts_equal_the_embedding_hook_counts():
    """The bench takes token-forwards from the sampler's stats (what works under torch.compile); a hook on the
    input embedding sees the same positions in every eager mode."""
    import torch

    from spg_lib.bench.decode import MODES, TokenForwards, _prompts
    from spg_lib.decoding import generate
    from spg_lib.models import init_tiny_model

    model = init_tiny_model(seed=0).eval()
    cfg = model.config
    ids, mask, _ = _prompts(3, 12, 103, {cfg.mask_token_id, cfg.eos_token_id, cfg.pad_token_id}, 0)
    kw = {"gen_length": 16, "block_length": 8, "steps": 8, "mask_id": cfg.mask_token_id, "eos_id": cfg.eos_token_id}
    for name, opts in MODES.items():
        if opts is None or opts.get("compile"):
            continue
        stats: dict = {}
        hook = TokenForwards(model)
        with torch.inference_mode():
            generate(model, ids, mask, **kw, **opts, stats=stats)
        hook.close()
        assert stats["token_forwards"] == hook.count > 0, name


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
