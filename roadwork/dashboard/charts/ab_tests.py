"""Charts of the A/B tests page: each arm's MCC with its CI."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from roadwork.dashboard.charts.layout import EVAL_COLOR, TRAIN_COLOR, layout

ARM_COLORS = {"A": TRAIN_COLOR, "B": EVAL_COLOR}


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
    return layout(fig, showlegend=False, height=280)
