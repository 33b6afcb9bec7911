"""The colours and the layout every dashboard chart shares."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

CHAMPION_COLOR = "#d62728"
EVAL_COLOR = "#1f77b4"
TRAIN_COLOR = "#7f7f7f"


def layout(fig: go.Figure, *, height: int = 320, **extra: Any) -> go.Figure:
    """`fig` with the dashboard's height, tight margins and a horizontal legend above the plot."""
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        **extra,
    )
    return fig
