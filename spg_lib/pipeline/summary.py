"""The run summary at the end of the pipeline: base vs trained accuracy, reward gain, wall time.

Inputs are files the earlier stages wrote (so DVC tracks them as deps):

* ``base`` / ``trained``: ``metrics.json`` of ``spg evaluate`` (`spg_lib.tasks.metrics.EvalMetrics`), which
  must share one evaluation protocol (`EvalProtocol`: task, test-data hash, prompt style, decoding, scoring);
* ``train_log``: the trainer's ``metrics.jsonl`` (one row per optimizer step, ``reward/mean`` on rollout steps);
* ``timings``: JSON files with a ``wall_time_s`` key (one per stage).

Outputs: ``summary.json`` (``task``, ``base_accuracy``, ``trained_accuracy`` in %, ``accuracy_gain``,
``reward_first``/``reward_last``/``reward_gain``, ``wall_time_s``, ...), ``reward_curve.csv`` (DVC plot) and
``accuracy_by_length.csv`` (accuracy per completion-length bin, both models; DVC plot). All written atomically.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spg_lib.io import atomic_write, atomic_write_json, read_json, read_jsonl
from spg_lib.tasks.metrics import read_metrics

__all__ = ["ProtocolMismatchError", "accuracy_by_length", "format_table", "report", "reward_curve", "summarize"]

class ProtocolMismatchError(ValueError):
    """Base and trained evaluations used different protocols, so their accuracies don't compare."""


_RAN = "did its stage run?"


def _jsonl_rows(path: str | Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(path, hint=_RAN)]  # line-numbered errors for malformed lines


def reward_curve(train_log: str | Path | list[dict[str, Any]]) -> list[dict[str, float]]:
    """[{step, reward}] from the trainer's JSONL (rows without ``reward/mean`` are inner iterations)."""
    rows = _jsonl_rows(train_log) if isinstance(train_log, str | Path) else train_log
    curve = []
    for row in rows:
        value = row.get("reward/mean")
        if value is not None and math.isfinite(float(value)):
            curve.append({"step": int(row["step"]), "reward": float(value)})
    return curve


def accuracy_by_length(generations: str | Path, bins: Sequence[int] = (8, 16, 24, 32, 48, 64, 128, 256, 512)):
    """[{length_bin, n, accuracy}]: exact-match accuracy (%) of completions grouped by token length."""
    counts: dict[int, list[int]] = {}
    for rec in _jsonl_rows(generations):
        n_tok = int(rec.get("completion_tokens", 0))
        edge = next((b for b in bins if n_tok <= b), bins[-1])
        c = counts.setdefault(edge, [0, 0])
        c[0] += bool(rec.get("correct"))
        c[1] += 1
    return [{"length_bin": b, "n": c[1], "accuracy": 100.0 * c[0] / c[1]} for b, c in sorted(counts.items())]


def _write_csv(path: Path, rows: list[dict[str, Any]], fields: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def summarize(base: str | Path, trained: str | Path, train_log: str | Path, out_dir: str | Path,
              timings: Sequence[str | Path] = (), window: int = 5) -> dict[str, Any]:
    """Compare the two evaluations and the training curve; write summary.json + plot CSVs into ``out_dir``.

    ``reward_first``/``reward_last`` average the first/last ``window`` rollout rewards.
    Raises:
        ProtocolMismatchError: the evaluations ran different protocols (the message lists the differences).
        MetricsError: a metrics file is missing or does not follow the schema (one line naming file and field).
    """
    b, t = read_metrics(base), read_metrics(trained)
    differ = b.protocol.differences(t.protocol)
    if differ:
        detail = ", ".join(f"{k}: {x!r} (base) vs {y!r} (trained)" for k, (x, y) in differ.items())
        raise ProtocolMismatchError(f"{base} vs {trained}: evaluation protocols differ in {detail}")
    log_rows = _jsonl_rows(train_log)  # read once: the curve and the last step
    curve = reward_curve(log_rows)
    first = curve[:window]
    last = curve[-window:]
    reward_first = sum(r["reward"] for r in first) / len(first) if first else float("nan")
    reward_last = sum(r["reward"] for r in last) / len(last) if last else float("nan")
    wall = 0.0
    for path in timings:
        wall += float(read_json(path, what="stage timing", hint=_RAN).get("wall_time_s", 0.0))
    wall += b.wall_time_s + t.wall_time_s
    summary = {
        "task": t.protocol.task,
        "base_accuracy": b.accuracy,
        "trained_accuracy": t.accuracy,
        "accuracy_gain": t.accuracy - b.accuracy,
        "base_exact_match": b.exact_match,
        "trained_exact_match": t.exact_match,
        "reward_first": reward_first,
        "reward_last": reward_last,
        "reward_gain": reward_last - reward_first,
        "train_steps": max((int(r.get("step", 0)) for r in log_rows), default=0),
        "wall_time_s": wall,
        "protocol": t.protocol.as_dict(),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "summary.json", summary)
    _write_csv(out / "reward_curve.csv", curve, ("step", "reward"))
    by_len = []
    for label, path in (("base", base), ("trained", trained)):
        gens = Path(path).with_name("generations.jsonl")
        if gens.exists():
            by_len += [{"model": label, **row} for row in accuracy_by_length(gens)]
    _write_csv(out / "accuracy_by_length.csv", by_len, ("model", "length_bin", "n", "accuracy"))
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """The short results table printed at the end of `make run`."""
    def num(v: Any, fmt: str = "{:.1f}") -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)

    rows = [
        ("task", str(summary["task"])),
        ("base accuracy (%)", num(summary["base_accuracy"])),
        ("trained accuracy (%)", num(summary["trained_accuracy"])),
        ("gain (points)", num(summary["accuracy_gain"], "{:+.1f}")),
        ("rollout reward first→last", f"{num(summary['reward_first'], '{:.3f}')} → "
                                      f"{num(summary['reward_last'], '{:.3f}')} "
                                      f"({num(summary['reward_gain'], '{:+.3f}')})"),
        ("wall time (s)", num(summary["wall_time_s"], "{:.0f}")),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def report(summary_path: str | Path, registered_path: str | Path | None = None) -> str:
    """The end-of-run report: the results table, then where the MLflow run and registered model are."""
    summary = read_json(summary_path, what="run summary", hint=_RAN)
    lines = ["Results (same test split and protocol for both models):", format_table(summary)]
    if registered_path and Path(registered_path).exists():
        reg = read_json(registered_path, what="registration record", hint=_RAN)
        lines.append("MLflow:")
        for key, label in (("tracking_uri", "tracking URI"), ("run_id", "run"), ("model_uri", "model"),
                           ("name", "registered model"), ("version", "version"), ("aliases", "aliases")):
            if reg.get(key) is not None:
                value = ", ".join(reg[key]) if isinstance(reg[key], list) else reg[key]
                lines.append(f"  {label.ljust(16)}  {value}")
    lines.append(f"Summary: {summary_path}")
    return "\n".join(lines)
