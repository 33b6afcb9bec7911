"""Charts of the Deployments page: what was live when."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import plotly.graph_objects as go

from roadwork.dashboard.charts.layout import CHAMPION_COLOR, EVAL_COLOR, layout


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
    return layout(fig, showlegend=False, height=280)
