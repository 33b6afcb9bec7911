"""Charts of the Overview page: our standing over time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import plotly.graph_objects as go

from roadwork.dashboard.charts.layout import EVAL_COLOR, TRAIN_COLOR, layout


def standing_trend(
    times: Sequence[dt.datetime], incentive: Sequence[float | None], rank: Sequence[int | None]
) -> go.Figure:
    """Our incentive (left axis) and miner rank (right axis, 1 on top) over the good snapshots, oldest first."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=list(times), y=list(incentive), mode="lines+markers", name="incentive",
                             line={"color": EVAL_COLOR}, marker={"size": 4}))
    fig.add_trace(go.Scatter(x=list(times), y=list(rank), mode="lines", name="rank", yaxis="y2",
                             line={"color": TRAIN_COLOR, "dash": "dot", "shape": "hv"}))
    fig.update_layout(
        yaxis={"title": "incentive", "rangemode": "tozero"},
        yaxis2={"title": "rank", "overlaying": "y", "side": "right", "autorange": "reversed", "showgrid": False},
    )
    fig.update_xaxes(title=None)
    return layout(fig, height=220)
