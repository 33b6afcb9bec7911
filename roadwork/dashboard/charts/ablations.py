"""Charts of the Ablations page: the delta of each variant to the base."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from roadwork.dashboard.charts.layout import TRAIN_COLOR, layout

GAIN_COLOR = "#2ca02c"  # the variant beat the base
LOSS_COLOR = "#d62728"  # the variant lost to the base


def ablation_deltas(
    labels: Sequence[str],
    deltas: Sequence[float],
    ci_low: Sequence[float | None],
    ci_high: Sequence[float | None],
) -> go.Figure:
    """Horizontal bars: each variant's MCC delta to the base (labels like "gps_sampling off", first on top), its
    95% CI as an error bar (none where the CI is undefined: one seed), a line at zero, green above, red below."""
    plus = [(hi - d) if hi is not None else 0.0 for d, hi in zip(deltas, ci_high, strict=True)]
    minus = [(d - lo) if lo is not None else 0.0 for d, lo in zip(deltas, ci_low, strict=True)]
    ci = ["n/a" if lo is None or hi is None else f"[{lo:+.3f}, {hi:+.3f}]"
          for lo, hi in zip(ci_low, ci_high, strict=True)]
    fig = go.Figure(
        go.Bar(
            x=list(deltas),
            y=list(labels),
            orientation="h",
            marker_color=[GAIN_COLOR if d > 0 else LOSS_COLOR if d < 0 else TRAIN_COLOR for d in deltas],
            error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus},
            customdata=ci,
            hovertemplate="%{y}<br>delta %{x:+.3f}<br>95% CI %{customdata}<extra></extra>",
        )
    )
    fig.add_vline(x=0, line={"color": "black", "width": 1})
    fig.update_xaxes(title="MCC delta to the base (variant - base, paired by seed)", zeroline=False)
    fig.update_yaxes(type="category", autorange="reversed")
    return layout(fig, showlegend=False, height=max(200, 80 + 40 * len(labels)))
