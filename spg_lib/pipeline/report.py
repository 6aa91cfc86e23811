"""The run report for the Kubeflow UI: a Markdown accuracy table and a self-contained HTML page.

    md = accuracy_markdown(read_metrics(base), read_metrics(trained), min_gain=cfg.kfp.min_gain)
    page = html_report(summary, reward_curve(log), by_length, title="SPG run: spg on sudoku")

Pure functions: they return strings and touch no file. Every text value is HTML-escaped (a task name or path
cannot inject markup into the UI); Markdown cells also escape ``|``. Plots are PNGs drawn with matplotlib's Agg
canvas on `matplotlib.figure.Figure` objects (not pyplot, so no global figure registry to leak into; each figure
is cleared and released after rendering) and embedded as ``data:image/png;base64`` URIs.

The gain is ``trained - base`` accuracy in percentage points; it passes when the two evaluations share one
protocol (`EvalProtocol.differences` is empty) and the gain is ``>= min_gain``. With different protocols the
comparison is invalid and both outputs say which fields differ.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from spg_lib.tasks.metrics import PROTOCOL_KEYS, EvalMetrics

__all__ = ["accuracy_markdown", "html_report"]

# the protocol fields in the order a reader scans them (then any others of EvalProtocol)
_PROTOCOL_ORDER = ("task", "n", "gen_length", "steps", "block_length", "prompt_style", "data_hash", "temperature",
                   "remasking", "mode", "redecode_earlier_masks")


def _protocol_keys() -> list[str]:
    return [k for k in _PROTOCOL_ORDER if k in PROTOCOL_KEYS] + [k for k in PROTOCOL_KEYS if k not in _PROTOCOL_ORDER]


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return fmt.format(value)


def _md(value: Any) -> str:
    """A Markdown table cell: HTML-escaped, pipes escaped, on one line."""
    return html.escape(" ".join(str(value).split())).replace("|", "\\|")


def _differences_text(differ: Mapping[str, tuple[Any, Any]], cell: Callable[[Any], str]) -> str:
    return ", ".join(f"{cell(k)}: {cell(repr(b))} (base) vs {cell(repr(t))} (trained)" for k, (b, t) in differ.items())


def accuracy_markdown(base: EvalMetrics, trained: EvalMetrics, *, min_gain: float) -> str:
    """The UI's accuracy table: base vs trained (accuracy %, exact match %, mean completion tokens, n), the gain
    in points and whether it passes ``min_gain``, then the shared protocol, or which protocol fields differ."""
    differ = base.protocol.differences(trained.protocol)
    gain = trained.accuracy - base.accuracy
    task = _md(trained.protocol.task)
    lines = [f"### Accuracy: base vs trained ({task})", "",
             "| | base | trained | change |", "|---|---:|---:|---:|",
             f"| accuracy (%) | {_num(base.accuracy)} | {_num(trained.accuracy)} | {_num(gain, '{:+.1f}')} |"]
    lines.append(f"| exact match (%) | {_num(base.exact_match)} | {_num(trained.exact_match)} | "
                 f"{_num(trained.exact_match - base.exact_match, '{:+.1f}')} |")
    lines.append(f"| mean completion tokens | {_num(base.mean_completion_tokens)} | "
                 f"{_num(trained.mean_completion_tokens)} | "
                 f"{_num(trained.mean_completion_tokens - base.mean_completion_tokens, '{:+.1f}')} |")
    lines.append(f"| examples (n) | {base.protocol.n} | {trained.protocol.n} | |")
    lines.append("")
    if differ:
        lines.append(f"**Comparison invalid: the evaluation protocols differ** in "
                     f"{_differences_text(differ, _md)}. The gain of {_num(gain, '{:+.1f}')} points is not "
                     f"a measurement and does not pass min_gain ({_num(min_gain, '{:.1f}')} points).")
        return "\n".join(lines) + "\n"
    verdict = "passes" if gain >= min_gain else "does not pass"
    lines.append(f"**Gain: {_num(gain, '{:+.1f}')} points, {verdict} min_gain "
                 f"(>= {_num(min_gain, '{:.1f}')} points).**")
    lines += ["", "Shared evaluation protocol:", "", "| field | value |", "|---|---|"]
    proto = trained.protocol.as_dict()
    lines += [f"| {_md(k)} | {_md(proto[k])} |" for k in _protocol_keys()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ HTML


def _png(draw: Callable[[Any], None], width: float = 6.4, height: float = 3.6) -> str:
    """``draw(axes)`` rendered to a PNG (Agg, 100 dpi), as a base64 string; the figure is released after."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    try:
        FigureCanvasAgg(fig)
        draw(fig.add_subplot(1, 1, 1))
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return base64.b64encode(buf.getvalue()).decode("ascii")
    finally:
        fig.clear()


def _reward_plot(curve: Sequence[Mapping[str, Any]], window: int = 5) -> str:
    steps = [float(r["step"]) for r in curve]
    rewards = [float(r["reward"]) for r in curve]

    def draw(ax: Any) -> None:
        ax.plot(steps, rewards, marker="o", markersize=3, linewidth=1, alpha=0.6, label="rollout reward (mean)")
        if len(rewards) >= window:
            avg = [sum(rewards[i - window + 1:i + 1]) / window for i in range(window - 1, len(rewards))]
            ax.plot(steps[window - 1:], avg, linewidth=2, label=f"moving average ({window})")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("reward")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")

    return _png(draw)


def _length_plot(by_length: Sequence[Mapping[str, Any]]) -> str:
    bins = sorted({int(r["length_bin"]) for r in by_length})
    models = list(dict.fromkeys(str(r.get("model", "model")) for r in by_length))
    acc = {(str(r.get("model", "model")), int(r["length_bin"])): float(r["accuracy"]) for r in by_length}
    width = 0.8 / max(len(models), 1)

    def draw(ax: Any) -> None:
        for j, model in enumerate(models):
            xs = [i + (j - (len(models) - 1) / 2) * width for i, b in enumerate(bins) if (model, b) in acc]
            ys = [acc[(model, b)] for b in bins if (model, b) in acc]
            ax.bar(xs, ys, width=width, label=model)
        ax.set_xticks(range(len(bins)), [f"<= {b}" for b in bins])
        ax.set_xlabel("completion length (tokens)")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best", fontsize="small")

    return _png(draw)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .7em;"
          "text-align:right}th:first-child,td:first-child{text-align:left}.bad{color:#b00020;font-weight:bold}"
          "img{max-width:100%;height:auto}code{font-size:.9em}")


def html_report(summary: Mapping[str, Any], reward_curve: list[dict], by_length: list[dict], *, title: str) -> str:
    """A self-contained HTML page: the accuracy table, the reward curve and accuracy per completion length (PNG
    data URIs), the protocol. Inputs as `spg_lib.pipeline.summary.summarize` / `reward_curve` /
    `accuracy_by_length` return them (``by_length`` rows may carry a ``model`` key: one bar series each); a
    summary whose ``accuracy_gain`` is None (protocols differ) says that the comparison is invalid."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>", f"<h1>{_e(title)}</h1>"]
    gain = summary.get("accuracy_gain")
    rows = [["accuracy (%)", _num(summary.get("base_accuracy")), _num(summary.get("trained_accuracy")),
             _num(gain, "{:+.1f}")]]
    if summary.get("base_exact_match") is not None or summary.get("trained_exact_match") is not None:
        em_b, em_t = summary.get("base_exact_match"), summary.get("trained_exact_match")
        rows.append(["exact match (%)", _num(em_b), _num(em_t),
                     _num(em_t - em_b if em_b is not None and em_t is not None else None, "{:+.1f}")])
    parts += [f"<h2>Accuracy on {_e(summary.get('task', '?'))}</h2>",
              _table(["", "base", "trained", "change (points)"], rows)]
    if gain is None:
        parts.append('<p class="bad">Comparison invalid: the base and trained evaluations ran different '
                     "protocols (see the accuracy table artifact for the fields that differ).</p>")
    facts = [(label, _num(summary.get(key), fmt)) for label, key, fmt in (
        ("rollout reward, first", "reward_first", "{:.3f}"), ("rollout reward, last", "reward_last", "{:.3f}"),
        ("reward gain", "reward_gain", "{:+.3f}"), ("training steps", "train_steps", "{:.0f}"),
        ("wall time (s)", "wall_time_s", "{:.0f}")) if key in summary]
    if facts:
        parts.append(_table(["training", ""], facts))

    parts.append("<h2>Training reward</h2>")
    if reward_curve:
        parts.append(_img(_reward_plot(reward_curve), "rollout reward per optimizer step"))
    else:
        parts.append("<p>No rollout rewards were logged.</p>")
    parts.append("<h2>Accuracy per completion length</h2>")
    if by_length:
        parts.append(_img(_length_plot(by_length), "accuracy per completion-length bin"))
        parts.append(_table(["model", "length (tokens)", "n", "accuracy (%)"],
                            [[r.get("model", "model"), f"<= {r['length_bin']}", r["n"], _num(r["accuracy"])]
                             for r in by_length]))
    else:
        parts.append("<p>No generations were available.</p>")
    protocol = summary.get("protocol")
    if isinstance(protocol, Mapping) and protocol:
        keys = [k for k in _protocol_keys() if k in protocol] + [k for k in protocol if k not in PROTOCOL_KEYS]
        parts += ["<h2>Evaluation protocol (shared)</h2>", _table(["field", "value"], [[k, protocol[k]] for k in keys])]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
