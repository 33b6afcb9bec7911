"""Charts of the Models page: MCC across versions, MCC per condition (bars and heatmap), the threshold sweep,
the calibration curve, and teacher against student per condition."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from roadwork.dashboard.charts.layout import (
    CHAMPION_COLOR,
    EVAL_COLOR,
    TRAIN_COLOR,
    layout,
)

CELL_TEXT_LIMIT = 600  # above this many cells the heatmap drops the in-cell numbers (unreadable, slow)
VALIDATOR_CUT = 0.5

Matrix = Sequence[Sequence[float | None]]


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
    return layout(fig)


def _has_negative(*series: Sequence[float | None] | None) -> bool:
    return any(v is not None and v < 0 for s in series if s is not None for v in s)


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
    return layout(fig, showlegend=False)


def mcc_diff_matrix(mcc: Matrix, reference_row: int | None) -> list[list[float | None]]:
    """Each cell minus the reference row's cell of the same column; None where either is missing.

    Without a reference row the MCC values themselves are returned (copied)."""
    if reference_row is None:
        return [list(row) for row in mcc]
    ref = mcc[reference_row]
    return [[None if v is None or r is None else v - r for v, r in zip(row, ref, strict=True)] for row in mcc]


def _ci_text(low: float | None, high: float | None) -> str:
    return "CI -" if low is None or high is None else f"CI [{low:.3f}, {high:.3f}]"


def condition_heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    mcc: Matrix,
    n: Sequence[Sequence[int | None]],
    ci_low: Matrix,
    ci_high: Matrix,
    reference_row: int | None = None,
) -> go.Figure:
    """MCC per (version row, condition column), colored by the difference to the reference (champion) row.

    `customdata[i][j]` = [n, MCC, CI low, CI high, CI text]; missing cells are gaps. Rows are drawn top-down in
    the given order. Without a reference row the colors are the MCC itself."""
    z = mcc_diff_matrix(mcc, reference_row)
    custom = [
        [[n[i][j], mcc[i][j], ci_low[i][j], ci_high[i][j], _ci_text(ci_low[i][j], ci_high[i][j])]
         for j in range(len(columns))]
        for i in range(len(rows))
    ]
    show_text = len(rows) * len(columns) <= CELL_TEXT_LIMIT
    text = [["" if v is None else f"{v:.2f}" for v in row] for row in mcc] if show_text else None
    diff = reference_row is not None
    values = [abs(v) for row in z for v in row if v is not None]
    span = max(values, default=0.0) or 0.1
    heatmap = go.Heatmap(
        z=z,
        x=list(columns),
        y=list(rows),
        customdata=custom,
        text=text,
        texttemplate="%{text}" if show_text else None,
        textfont={"size": 9},
        hoverongaps=False,
        colorscale="RdBu" if diff else "Viridis",
        zmid=0.0 if diff else None,
        zmin=-span if diff else None,
        zmax=span if diff else None,
        colorbar={"title": {"text": "Δ MCC vs champion" if diff else "MCC"}},
        hovertemplate=(
            "%{y}<br>%{x}<br>MCC %{customdata[1]:.3f}"
            + (" (Δ %{z:+.3f})" if diff else "")
            + "<br>n=%{customdata[0]}<br>%{customdata[4]}<extra></extra>"
        ),
    )
    fig = go.Figure(heatmap)
    fig.update_xaxes(type="category", tickangle=-45)
    fig.update_yaxes(type="category", autorange="reversed")
    return layout(fig, height=140 + 22 * max(len(rows), 3), showlegend=False)


def threshold_sweep(
    thresholds: Sequence[float],
    mcc: Sequence[float],
    *,
    best_threshold: float | None = None,
    best_mcc: float | None = None,
    calibrated_threshold: float | None = None,
) -> go.Figure:
    """MCC of `prob > t` against the threshold t, with the best and the calibrated (deployed) cuts marked.

    Traces: "MCC" (the curve), "best threshold" (a star), "calibrated threshold" (a dashed vertical line)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=list(thresholds), y=list(mcc), mode="lines", name="MCC", line={"color": EVAL_COLOR},
                             hovertemplate="t=%{x:.3f}<br>MCC %{y:.3f}<extra></extra>"))
    low = min([0.0, *mcc])
    if calibrated_threshold is not None:
        fig.add_trace(go.Scatter(x=[calibrated_threshold] * 2, y=[low, 1.0], mode="lines",
                                 name=f"calibrated threshold {calibrated_threshold:.3f}",
                                 line={"color": TRAIN_COLOR, "dash": "dash"}, hoverinfo="skip"))
    if best_threshold is not None and best_mcc is not None:
        fig.add_trace(go.Scatter(x=[best_threshold], y=[best_mcc], mode="markers",
                                 name=f"best threshold {best_threshold:.3f}",
                                 marker={"symbol": "star", "size": 14, "color": CHAMPION_COLOR},
                                 hovertemplate="best t=%{x:.3f}<br>MCC %{y:.3f}<extra></extra>"))
    fig.update_xaxes(title="threshold on the raw probability", range=[0.0, 1.0])
    fig.update_yaxes(title="MCC", range=[low, 1.0])
    return layout(fig)


def calibration_points(threshold: float) -> tuple[list[float], list[float]]:
    """The calibration map as points: raw probability -> answer, piecewise linear through (t, 0.5)."""
    return [0.0, threshold, 1.0], [0.0, VALIDATOR_CUT, 1.0]


def calibration_curve(threshold: float) -> go.Figure:
    """The answer sent for each raw probability: (0, 0) -> (t, 0.5) -> (1, 1), against the identity.

    Traces: "calibration", "identity", "threshold" (the point (t, 0.5))."""
    xs, ys = calibration_points(threshold)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="calibration", line={"color": EVAL_COLOR, "width": 3},
                             hovertemplate="raw %{x:.3f} -> answer %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0.0, 1.0], y=[0.0, 1.0], mode="lines", name="identity",
                             line={"color": TRAIN_COLOR, "dash": "dot"}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[threshold], y=[VALIDATOR_CUT], mode="markers", name="threshold",
                             marker={"size": 11, "color": CHAMPION_COLOR},
                             hovertemplate="t=%{x:.3f} -> 0.5<extra></extra>"))
    fig.add_hline(y=VALIDATOR_CUT, line={"color": TRAIN_COLOR, "width": 1})
    fig.update_xaxes(title="raw probability", range=[0.0, 1.0])
    fig.update_yaxes(title="answer (> 0.5 = roadwork)", range=[0.0, 1.0])
    return layout(fig)


def teacher_student_conditions(
    labels: Sequence[str],
    teacher_mcc: Sequence[float | None],
    student_mcc: Sequence[float | None],
    n: Sequence[int | None] | None = None,
) -> go.Figure:
    """Replay MCC per condition cell, teacher and student as grouped bars (traces "teacher", "student", in that
    order); a cell one of them lacks leaves its bar out rather than drawing a zero."""
    fig = go.Figure()
    custom = list(n) if n is not None else None
    hover = "%{x}<br>%{fullData.name} MCC %{y:.3f}" + ("<br>n=%{customdata}" if n is not None else "")
    for name, values, color in (("teacher", teacher_mcc, TRAIN_COLOR), ("student", student_mcc, EVAL_COLOR)):
        fig.add_trace(go.Bar(x=list(labels), y=list(values), name=name, marker_color=color, customdata=custom,
                             hovertemplate=hover + "<extra></extra>"))
    fig.update_xaxes(type="category", tickangle=-45)
    fig.update_yaxes(title="replay MCC", range=[-1.0, 1.0] if _has_negative(teacher_mcc, student_mcc) else [0.0, 1.0])
    return layout(fig, barmode="group")
