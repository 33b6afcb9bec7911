"""Charts of the Leaderboard page: miners over time and how incentive is spread."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from roadwork.dashboard.charts.layout import CHAMPION_COLOR, EVAL_COLOR, layout

OURS_COLOR = CHAMPION_COLOR

# (when, value) points of one series; a None value leaves a gap.
Series = Sequence[tuple[dt.datetime, float | None]]


def standing_lines(
    series: Mapping[str, Series], *, ours: str | None, y_title: str, reverse: bool = False
) -> go.Figure:
    """One line per miner (name -> points over time); ours drawn thicker in its own colour.

    `reverse` puts low values at the top (ranks: 1 is best)."""
    fig = go.Figure()
    for name, points in series.items():
        mine = name == ours
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode="lines+markers",
                name=name,
                line={"width": 4 if mine else 1.5, **({"color": OURS_COLOR} if mine else {})},
                marker={"size": 7 if mine else 4},
            )
        )
    fig.update_xaxes(title="time (local)")
    fig.update_yaxes(title=y_title, autorange="reversed" if reverse else True)
    return layout(fig)


def incentive_histogram(incentives: Sequence[float], ours: float | None = None, bins: int = 30) -> go.Figure:
    """How incentive is spread across miners, with a line at ours."""
    fig = go.Figure(go.Histogram(x=list(incentives), nbinsx=bins, marker_color=EVAL_COLOR, name="miners"))
    if ours is not None:
        fig.add_vline(x=ours, line={"color": OURS_COLOR, "width": 3, "dash": "dash"}, annotation_text="us")
    fig.update_xaxes(title="incentive")
    fig.update_yaxes(title="miners")
    return layout(fig, showlegend=False, height=280)
