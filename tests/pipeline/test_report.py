"""The UI report: the Markdown accuracy table and the self-contained HTML page with embedded PNG plots, from the
real outputs of `summarize` / `reward_curve` / `accuracy_by_length`."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import struct

import pytest

from spg_lib.pipeline.report import accuracy_markdown, html_report
from spg_lib.pipeline.summary import accuracy_by_length, reward_curve, summarize
from spg_lib.tasks.metrics import EvalMetrics, EvalProtocol

PROTOCOL = EvalProtocol(task="sudoku", data_hash="cd" * 32, n=256, prompt_style="compact", mode="fixed",
                        gen_length=40, block_length=8, steps=20, temperature=0.0, remasking="low_confidence",
                        redecode_earlier_masks=False)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _metrics(accuracy: float, exact: float, tokens: float, **protocol) -> EvalMetrics:
    return EvalMetrics(protocol=dataclasses.replace(PROTOCOL, **protocol), accuracy=accuracy, exact_match=exact,
                       mean_completion_tokens=tokens, median_completion_tokens=tokens, batch_size=8,
                       wall_time_s=12.0, tokens_per_s=100.0, device="cpu")


def _write_eval(d, m: EvalMetrics, correct: list[tuple[bool, int]]):
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(m.as_dict()))
    (d / "generations.jsonl").write_text("".join(json.dumps({"correct": c, "completion_tokens": t}) + "\n"
                                                 for c, t in correct))
    return d / "metrics.json"


@pytest.fixture
def run(tmp_path):
    """summary, curve and by-length rows of a small run, produced by the real summary functions."""
    base = _write_eval(tmp_path / "base", _metrics(19.5, 3.1, 38.25), [(True, 5), (False, 12), (False, 40)])
    trained = _write_eval(tmp_path / "trained", _metrics(45.2, 11.7, 36.5), [(True, 5), (True, 12), (False, 40)])
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": s, "reward/mean": 0.3 + 0.02 * s}) + "\n" for s in range(1, 21)))
    summary = summarize(base, trained, log, tmp_path / "summary")
    by_length = [{"model": label, **row} for label in ("base", "trained")
                 for row in accuracy_by_length(tmp_path / label / "generations.jsonl")]
    return summary, reward_curve(log), by_length


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b64, validate=True) for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_markdown_table_numbers_gain_and_protocol():
    md = accuracy_markdown(_metrics(19.5, 3.1, 38.25), _metrics(45.2, 11.7, 36.5), min_gain=10.0)
    for text in ("| accuracy (%) | 19.5 | 45.2 | +25.7 |", "| exact match (%) | 3.1 | 11.7 | +8.6 |",
                 "| mean completion tokens | 38.2 | 36.5 | -1.8 |", "| examples (n) | 256 | 256 | |",
                 "+25.7 points, passes min_gain (>= 10.0 points)", "| gen_length | 40 |", "| steps | 20 |",
                 "| block_length | 8 |", "| prompt_style | compact |", f"| data_hash | {'cd' * 32} |",
                 "| task | sudoku |", "| n | 256 |"):
        assert text in md, (text, md)
    failing = accuracy_markdown(_metrics(19.5, 3.1, 38.25), _metrics(25.0, 4.0, 36.5), min_gain=10.0)
    assert "+5.5 points, does not pass min_gain (>= 10.0 points)" in failing


def test_markdown_mismatched_protocol_names_the_fields():
    md = accuracy_markdown(_metrics(19.5, 3.1, 38.25), _metrics(45.2, 11.7, 36.5, gen_length=64, steps=32),
                           min_gain=0.0)
    assert "Comparison invalid: the evaluation protocols differ" in md
    assert "gen_length: 40 (base) vs 64 (trained)" in md and "steps: 20 (base) vs 32 (trained)" in md
    assert "does not pass min_gain" in md and "passes min_gain (>=" not in md
    assert "block_length" not in md  # only the differing fields are named


def test_html_page_numbers_and_embedded_pngs(run):
    summary, curve, by_length = run
    page = html_report(summary, curve, by_length, title="SPG run: spg on sudoku")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for text in ("19.5", "45.2", "+25.7", "3.1", "11.7", f"{summary['reward_first']:.3f}",
                 f"{summary['reward_last']:.3f}", "gen_length", "cd" * 32):
        assert text in page, text
    images = _pngs(page)
    assert len(images) == 2
    for png in images:
        assert png[:8] == PNG_SIGNATURE and len(png) > 5_000
        width, height = struct.unpack(">II", png[16:24])  # IHDR: the figure's pixel size (6.4 x 3.6 in at 100 dpi)
        assert (width, height) == (640, 360)
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing to fetch


def test_html_escapes_every_text_value(run):
    summary, curve, by_length = run
    evil = "<script>alert(1)</script>"
    summary = {**summary, "task": evil, "protocol": {**summary["protocol"], "task": evil}}
    by_length = [{**r, "model": f"{r['model']}<b>"} for r in by_length]
    page = html_report(summary, curve, by_length, title=f"run {evil} & co")
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "run &lt;script&gt;" in page and "&amp; co" in page
    md = accuracy_markdown(_metrics(1.0, 1.0, 1.0, task=evil), _metrics(2.0, 2.0, 1.0, task=evil), min_gain=0.0)
    assert "<script>" not in md and "&lt;script&gt;" in md


def test_html_without_curve_or_lengths_and_with_invalid_comparison():
    summary = {"task": "gsm8k", "base_accuracy": 70.0, "trained_accuracy": 72.5, "accuracy_gain": None}
    page = html_report(summary, [], [], title="t")
    assert "Comparison invalid" in page and "70.0" in page and "72.5" in page
    assert not _pngs(page) and "No rollout rewards were logged." in page and "No generations" in page


def test_matplotlib_figures_are_not_left_open(run):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    html_report(*run, title="t")
    assert plt.get_fignums() == before
