"""Pure Plotly figure builders: plain data in, `go.Figure` out (no Streamlit, no database)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import plotly.graph_objects as go

CHAMPION_COLOR = "#d62728"
EVAL_COLOR = "#1f77b4"
TRAIN_COLOR = "#7f7f7f"


def _layout(fig: go.Figure, *, height: int = 320, **extra) -> go.Figure:  # noqa: ANN003
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        **extra,
    )
    return fig


def mcc_across_versions(
    versions: Sequence[str],
    eval_mcc: Sequence[float | None],
    training_mcc: Sequence[float | None] | None = None,
    champion: str | None = None,
) -> go.Figure:
    """Latest-evaluation MCC per version (in the given order), training MCC dashed, the champion starred.

    Versions without a value leave a gap rather than a zero.
    """
    fig = go.Figure()
    x = list(versions)
    line = {"color": EVAL_COLOR}
    fig.add_trace(go.Scatter(x=x, y=list(eval_mcc), mode="lines+markers", name="latest evaluation MCC", line=line))
    if training_mcc is not None:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=list(training_mcc),
                mode="lines+markers",
                name="training val MCC",
                line={"color": TRAIN_COLOR, "dash": "dash"},
            )
        )
    value = eval_mcc[x.index(champion)] if champion in x else None
    if value is not None:
        champion_marker = {"symbol": "star", "size": 16, "color": CHAMPION_COLOR}
        fig.add_trace(go.Scatter(x=[champion], y=[value], mode="markers", name="champion", marker=champion_marker))
    fig.update_xaxes(title="version", type="category")
    fig.update_yaxes(title="MCC", range=[-1.0, 1.0] if _has_negative(eval_mcc, training_mcc) else [0.0, 1.0])
    return _layout(fig)


def _has_negative(*series: Sequence[float | None] | None) -> bool:
    return any(v is not None and v < 0 for s in series if s is not None for v in s)


def alias_timeline(
    events: Sequence[tuple[dt.datetime, str, str]],
    now: dt.datetime,
    version_order: Sequence[str] | None = None,
) -> go.Figure:
    """What was live when: a step line through `(when, version, action)` events, held until `now`.

    Events may come in any order; they are drawn oldest first. `version_order` orders the y axis (lowest first).
    """
    ordered = sorted(events, key=lambda e: e[0])
    fig = go.Figure()
    if ordered:
        xs = [e[0] for e in ordered] + [max(now, ordered[-1][0])]
        ys = [e[1] for e in ordered] + [ordered[-1][1]]
        line = {"color": EVAL_COLOR, "width": 3}
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line_shape="hv", name="live", line=line, hoverinfo="skip"))
        rollback = [e[2] == "rollback" for e in ordered]
        fig.add_trace(
            go.Scatter(
                x=[e[0] for e in ordered],
                y=[e[1] for e in ordered],
                mode="markers",
                name="alias move",
                marker={
                    "size": 11,
                    "color": [CHAMPION_COLOR if r else EVAL_COLOR for r in rollback],
                    "symbol": ["x" if r else "circle" for r in rollback],
                },
                text=[e[2] for e in ordered],
                hovertemplate="%{y}<br>%{text} at %{x}<extra></extra>",
            )
        )
    categories = list(version_order) if version_order is not None else sorted({e[1] for e in ordered})
    fig.update_yaxes(title="champion", type="category", categoryorder="array", categoryarray=categories)
    fig.update_xaxes(title="time (local)")
    return _layout(fig, showlegend=False, height=280)


def condition_mcc(
    labels: Sequence[str],
    mcc: Sequence[float],
    ci_low: Sequence[float | None] | None = None,
    ci_high: Sequence[float | None] | None = None,
    n: Sequence[int] | None = None,
) -> go.Figure:
    """MCC per condition cell as bars, with the confidence interval as error bars where known."""
    error_y = None
    if ci_low is not None and ci_high is not None:
        error_y = {
            "type": "data",
            "symmetric": False,
            "array": [(hi - m) if hi is not None else 0.0 for m, hi in zip(mcc, ci_high, strict=True)],
            "arrayminus": [(m - lo) if lo is not None else 0.0 for m, lo in zip(mcc, ci_low, strict=True)],
        }
    fig = go.Figure(
        go.Bar(
            x=list(labels),
            y=list(mcc),
            error_y=error_y,
            marker_color=EVAL_COLOR,
            customdata=list(n) if n is not None else None,
            hovertemplate="%{x}<br>MCC %{y:.3f}" + ("<br>n=%{customdata}" if n is not None else "") + "<extra></extra>",
        )
    )
    fig.update_yaxes(title="MCC")
    fig.update_xaxes(type="category")
    return _layout(fig, showlegend=False)
