"""The chart builders are pure: given data, check the traces and points they draw."""

from __future__ import annotations

import datetime as dt

import plotly.graph_objects as go
import pytest

from roadwork.dashboard.charts import deployments, models

T0 = dt.datetime(2025, 3, 1, 12, 0)


def test_mcc_across_versions_draws_eval_training_and_champion() -> None:
    fig = models.mcc_across_versions(["0.1.0", "0.2.0", "0.3.0"], [0.6, None, 0.75], [0.7, 0.8, 0.82], champion="0.3.0")
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["latest evaluation MCC", "training val MCC", "champion"]
    evaluated, training, champion = fig.data
    assert list(evaluated.x) == ["0.1.0", "0.2.0", "0.3.0"]
    assert list(evaluated.y) == [0.6, None, 0.75]  # a missing evaluation is a gap, not a zero
    assert list(training.y) == [0.7, 0.8, 0.82]
    assert (list(champion.x), list(champion.y)) == (["0.3.0"], [0.75])
    assert tuple(fig.layout.yaxis.range) == (0.0, 1.0)


def test_mcc_across_versions_without_champion_or_training_and_negative_mcc() -> None:
    fig = models.mcc_across_versions(["0.1.0"], [-0.2])
    assert [t.name for t in fig.data] == ["latest evaluation MCC"]
    assert tuple(fig.layout.yaxis.range) == (-1.0, 1.0)
    unevaluated_champion = models.mcc_across_versions(["0.1.0"], [None], champion="0.1.0")
    assert len(unevaluated_champion.data) == 1


def test_alias_timeline_steps_through_events_until_now() -> None:
    events = [  # newest first, as the history comes
        (T0 + dt.timedelta(days=2), "0.1.0", "rollback"),
        (T0 + dt.timedelta(days=1), "0.2.0", "deploy"),
        (T0, "0.1.0", "deploy"),
    ]
    now = T0 + dt.timedelta(days=3)
    fig = deployments.alias_timeline(events, now, version_order=["0.1.0", "0.2.0", "0.3.0"])
    line, moves = fig.data
    assert line.line.shape == "hv"
    assert list(line.x) == [T0, T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=2), now]
    assert list(line.y) == ["0.1.0", "0.2.0", "0.1.0", "0.1.0"]  # held until now
    assert list(moves.text) == ["deploy", "deploy", "rollback"]
    assert list(moves.marker.symbol) == ["circle", "circle", "x"]
    assert list(fig.layout.yaxis.categoryarray) == ["0.1.0", "0.2.0", "0.3.0"]


def test_alias_timeline_empty_and_clock_behind_last_event() -> None:
    assert deployments.alias_timeline([], T0).data == ()
    fig = deployments.alias_timeline([(T0, "0.1.0", "deploy")], T0 - dt.timedelta(seconds=1))
    assert list(fig.data[0].x) == [T0, T0]  # never draws backwards in time


def test_condition_mcc_bars_with_asymmetric_error_bars() -> None:
    fig = models.condition_mcc(
        ["weather=Rain", "level=3"], [0.5, 0.3], ci_low=[0.4, None], ci_high=[0.7, None], n=[120, 100]
    )
    (bars,) = fig.data
    assert list(bars.x) == ["weather=Rain", "level=3"] and list(bars.y) == [0.5, 0.3]
    assert list(bars.error_y.array) == pytest.approx([0.2, 0.0])
    assert list(bars.error_y.arrayminus) == pytest.approx([0.1, 0.0])
    assert list(bars.customdata) == [120, 100]


def test_condition_mcc_without_intervals() -> None:
    (bars,) = models.condition_mcc(["source=real"], [0.9]).data
    assert bars.error_y.array is None
