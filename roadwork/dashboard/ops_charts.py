"""Pure Plotly builders of the operations pages (A/B tests, hard negatives, leaderboard): data in, figure out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from roadwork.dashboard.charts import CHAMPION_COLOR, EVAL_COLOR, TRAIN_COLOR, _layout

ARM_COLORS = {"A": TRAIN_COLOR, "B": EVAL_COLOR}
REASON_COLORS = {"confident_mistake": CHAMPION_COLOR, "uncertain": EVAL_COLOR}
OURS_COLOR = CHAMPION_COLOR

# (when, value) points of one series; a None value leaves a gap.
Series = Sequence[tuple[dt.datetime, float | None]]


def ab_arm_mcc(
    arms: Sequence[str], mcc: Sequence[float], ci_low: Sequence[float], ci_high: Sequence[float]
) -> go.Figure:
    """MCC of each arm (labels like "A: name:0.1.0") as a point with its bootstrap CI as an error bar."""
    colors = [ARM_COLORS.get(label.split(":", 1)[0], EVAL_COLOR) for label in arms]
    fig = go.Figure(
        go.Scatter(
            x=list(arms),
            y=list(mcc),
            mode="markers",
            marker={"size": 14, "color": colors},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [hi - m for m, hi in zip(mcc, ci_high, strict=True)],
                "arrayminus": [m - lo for m, lo in zip(mcc, ci_low, strict=True)],
            },
            customdata=[[lo, hi] for lo, hi in zip(ci_low, ci_high, strict=True)],
            hovertemplate="%{x}<br>MCC %{y:.3f}<br>CI [%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra></extra>",
        )
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(title="MCC", range=[-1.0, 1.0] if min([*ci_low, 0.0]) < 0 else [0.0, 1.0])
    return _layout(fig, showlegend=False, height=280)


def hard_negative_counts(labels: Sequence[str], counts: Mapping[str, Sequence[int]]) -> go.Figure:
    """Stacked bars: items per condition value (`labels`, e.g. "weather=Rain"), one bar segment per reason."""
    fig = go.Figure()
    for reason, values in counts.items():
        fig.add_trace(go.Bar(x=list(labels), y=list(values), name=reason,
                             marker_color=REASON_COLORS.get(reason, TRAIN_COLOR)))
    fig.update_xaxes(type="category")
    fig.update_yaxes(title="items")
    return _layout(fig, barmode="stack")


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
    return _layout(fig)


def incentive_histogram(incentives: Sequence[float], ours: float | None = None, bins: int = 30) -> go.Figure:
    """How incentive is spread across miners, with a line at ours."""
    fig = go.Figure(go.Histogram(x=list(incentives), nbinsx=bins, marker_color=EVAL_COLOR, name="miners"))
    if ours is not None:
        fig.add_vline(x=ours, line={"color": OURS_COLOR, "width": 3, "dash": "dash"}, annotation_text="us")
    fig.update_xaxes(title="incentive")
    fig.update_yaxes(title="miners")
    return _layout(fig, showlegend=False, height=280)
