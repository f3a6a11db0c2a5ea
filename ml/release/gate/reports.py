"""Gate reports: gate.json for machines, gate.md / gate.html for people, gate.png for the
improvements with their intervals (zero marked). Rendering only: the decision is made in
:mod:`ml.release.gate.rules`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.core.metrics import CALIBRATION_CORRECT, ECE_BINS

if TYPE_CHECKING:
    from ml.release.gate.decision import GateDecision


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _table_rows(decision: GateDecision) -> list[list[str]]:
    rows = []
    for e in decision.estimates:
        if e.kind == "point":
            ci = "point only"
        else:
            ci = "–" if e.low is None else f"[{_fmt(e.low, True)}, {_fmt(e.high, True)}]"
        rows.append(
            [
                e.slice,
                e.metric,
                str(e.n_rows),
                _fmt(e.champion),
                _fmt(e.challenger),
                _fmt(e.improvement, True),
                ci,
                _fmt(e.rel, True),
            ]
        )
    return rows


_HEADER = ["slice", "metric", "rows", "champion", "challenger", "improvement", "CI", "relative"]


def _definitions(decision: GateDecision) -> list[str]:
    """What the metric names mean, so a number can be traced to its definition."""
    if decision.family == "intent":
        return [
            "accuracy / macro_f1: predictions after the out-of-scope threshold (macro over the "
            "classes present); ece: "
            f"{ECE_BINS} equal-width right-closed bins, correct = {CALIBRATION_CORRECT}; "
            "all from ml.core.metrics, the same code as evaluate's metrics.json",
        ]
    return [
        "full-catalogue ranking of each test user's held-out item, history excluded, ties at "
        "their expected rank; coverage@10: share of the catalogue in anyone's top 10; both "
        "models scored by ml.models.recommender.scoring, the same code as evaluate's metrics.json",
    ]


def render_markdown(decision: GateDecision, context: dict[str, Any], behaviour: Any = None) -> str:
    level = int(decision.confidence * 100)
    lines = [
        f"# Gate report: {decision.family}",
        "",
        f"**Decision: {decision.decision.upper()}**"
        + (" (first run: no champion yet)" if decision.first_run else "")
        + (" (tie: champion kept)" if decision.tie else ""),
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in context.items()]
    lines += [
        f"- rows paired: {decision.n_rows}; paired bootstrap {decision.resamples} "
        f"resamples, {level}% intervals (improvement: positive = better)",
        "",
        "## Reasons",
        "",
    ]
    lines += [f"- {r}" for r in decision.reasons] + ["", "## Metrics", ""]
    lines += [f"_{d}_" for d in _definitions(decision)] + [""]
    lines.append("| " + " | ".join(_HEADER) + " |")
    lines.append("|" + "---|" * len(_HEADER))
    lines += ["| " + " | ".join(row) + " |" for row in _table_rows(decision)]
    lines += ["", "## Checks", ""]
    lines += [f"- {c}" for r in decision.rules for c in r.checks]
    if decision.mcnemar:
        m = decision.mcnemar
        lines += [
            "",
            "## McNemar (accuracy)",
            "",
            f"champion-only correct {m['champion_only']}, challenger-only correct "
            f"{m['challenger_only']}, statistic {m['statistic']:.3f}, p = {m['p_value']:.4g}",
        ]
    if behaviour is not None:
        from ml.release.gate.behaviour import format_markdown

        lines += ["", format_markdown(*behaviour)]
    lines += ["", "![improvements](gate.png)", ""]
    return "\n".join(lines)


def behaviour_html(behaviour: Any) -> str:
    """Pass rates per test for both models, then the challenger's failing cases."""
    from html import escape

    if behaviour is None:
        return ""
    chal, champ = behaviour
    champ_tests = {t.name: t for t in champ.tests} if champ is not None else {}

    def rate(test: Any) -> str:
        if test is None or test.pass_rate is None:
            return "–"
        return f"{test.pass_rate:.1%} ({test.n_failed} failed of {test.n_applicable})"

    rows = "".join(
        f"<tr><td>{escape(t.name)}</td><td>{escape(t.kind)}</td><td>{escape(rate(t))}</td>"
        f"<td>{escape(rate(champ_tests.get(t.name)))}</td></tr>"
        for t in chal.tests
    )
    failures = "".join(
        f"<li><b>{escape(t.name)}</b> {escape(str(f.get('id', '')))}: "
        f"{escape(str(f.get('input', '')))} &rarr; expected {escape(str(f.get('expected', '')))}"
        f", got {escape(str(f.get('got', '')))}</li>"
        for t in chal.tests
        for f in t.failures[:20]
    )
    return (
        f"<h2>Behavioural checks</h2><p>suite {escape(str(chal.suite))}</p>"
        "<table><tr><th>test</th><th>kind</th><th>challenger</th><th>champion</th></tr>"
        f"{rows}</table><h3>Challenger's failing cases</h3><ul>{failures or '<li>none</li>'}</ul>"
    )


def render_html(decision: GateDecision, context: dict[str, Any], behaviour: Any = None) -> str:
    from html import escape

    color = {"promote": "#1a7f37", "reject": "#cf222e", "keep_champion": "#9a6700"}
    head = "".join(f"<th>{escape(h)}</th>" for h in _HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
        for row in _table_rows(decision)
    )
    checks = "".join(f"<li>{escape(c)}</li>" for r in decision.rules for c in r.checks)
    reasons = "".join(f"<li>{escape(r)}</li>" for r in decision.reasons)
    ctx = "".join(f"<li>{escape(str(k))}: {escape(str(v))}</li>" for k, v in context.items())
    notes = (" (first run: no champion yet)" if decision.first_run else "") + (
        " (tie: champion kept)" if decision.tie else ""
    )
    mc = ""
    if decision.mcnemar:
        m = decision.mcnemar
        mc = (
            f"<h2>McNemar (accuracy)</h2><p>champion-only {m['champion_only']}, challenger-only "
            f"{m['challenger_only']}, p = {m['p_value']:.4g}</p>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Gate report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
        f"<h1>Gate report: {escape(decision.family)}</h1>"
        f"<p style='font-size:1.4em;color:{color[decision.decision]}'><b>"
        f"{escape(decision.decision.upper())}</b>{escape(notes)}</p><ul>{ctx}</ul>"
        f"<h2>Reasons</h2><ul>{reasons}</ul><h2>Metrics</h2>"
        f"<p>{decision.n_rows} paired rows, {decision.resamples} bootstrap resamples, "
        f"{int(decision.confidence * 100)}% intervals</p>"
        f"<p><i>{escape(' '.join(_definitions(decision)))}</i></p>"
        f"<table><tr>{head}</tr>{body}</table><h2>Checks</h2><ul>{checks}</ul>{mc}"
        f"{behaviour_html(behaviour)}"
        "<img src='gate.png' alt='improvements with intervals'></body></html>"
    )


def plot_improvements(decision: GateDecision, path: Path) -> Path:
    """Horizontal error bars: each metric's improvement with its interval; zero marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ests = [e for e in decision.estimates if e.improvement is not None]
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(ests), 1) + 1.5))
    if ests:
        labels = [
            (e.metric if e.slice == "all" else f"{e.metric} [{e.slice}]")
            + (" (point, no CI)" if e.kind == "point" else "")
            for e in ests
        ]
        y = np.arange(len(ests))
        imp = np.array([e.improvement for e in ests], dtype=float)
        low = np.array([e.low if e.low is not None else e.improvement for e in ests], dtype=float)
        high = np.array(
            [e.high if e.high is not None else e.improvement for e in ests], dtype=float
        )
        ax.errorbar(imp, y, xerr=[imp - low, high - imp], fmt="o", capsize=4)
        ax.set_yticks(y, labels)
    else:
        ax.text(
            0.5,
            0.5,
            "first run: no champion to compare",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.axvline(0.0, color="grey", linestyle="--")
    ax.set_xlabel("improvement over champion (positive = better)")
    ax.set_title(f"{decision.family}: {decision.decision}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_reports(
    decision: GateDecision, out_dir: Path, context: dict[str, Any], behaviour: Any = None
) -> dict[str, str]:
    """gate.json (machines), gate.md and gate.html (people), gate.png (the differences).

    ``behaviour``: (challenger, champion)
    :class:`~ml.release.gate.behaviour.BehaviourReport`s, if run.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"gate.{ext}" for ext in ("json", "md", "html", "png")}
    payload = {**decision.to_dict(), "context": context}
    paths["json"].write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(decision, context, behaviour), encoding="utf-8")
    paths["html"].write_text(render_html(decision, context, behaviour), encoding="utf-8")
    plot_improvements(decision, paths["png"])
    return {k: str(v) for k, v in paths.items()}
