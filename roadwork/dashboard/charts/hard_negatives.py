"""Charts of the Hard negatives page: items per condition and reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from roadwork.dashboard.charts.layout import (
    CHAMPION_COLOR,
    EVAL_COLOR,
    TRAIN_COLOR,
    layout,
)

REASON_COLORS = {"confident_mistake": CHAMPION_COLOR, "uncertain": EVAL_COLOR}


def hard_negative_counts(labels: Sequence[str], counts: Mapping[str, Sequence[int]]) -> go.Figure:
    """Stacked bars: items per condition value (`labels`, e.g. "weather=Rain"), one bar segment per reason."""
    fig = go.Figure()
    for reason, values in counts.items():
        fig.add_trace(go.Bar(x=list(labels), y=list(values), name=reason,
                             marker_color=REASON_COLORS.get(reason, TRAIN_COLOR)))
    fig.update_xaxes(type="category")
    fig.update_yaxes(title="items")
    return layout(fig, barmode="stack")
