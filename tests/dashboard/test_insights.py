"""Overview and Models insights: the pages through AppTest on seeded and empty registries, the queries behind
them, and the pure chart builders."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import event
from streamlit.testing.v1 import AppTest

from roadwork.clock import utcnow
from roadwork.dashboard import context
from roadwork.dashboard.charts import models as model_charts
from roadwork.dashboard.charts import overview as overview_charts
from roadwork.dashboard.formatting import local
from roadwork.dashboard.queries import models as model_queries
from roadwork.dashboard.queries import overview as overview_queries
from roadwork.db import repo
from roadwork.db.engine import make_engine, read_session
from roadwork.platform.jobs.catalog import JOBS
from roadwork.platform.jobs.store import stored_jobs
from roadwork.settings import load_settings
from tests.dashboard import insight_seed as seed
from tests.dashboard.conftest import rendered, shown_text

APP = Path(__file__).resolve().parents[2] / "roadwork" / "dashboard" / "app.py"
OVERVIEW, MODELS = "views/overview.py", "views/models.py"
TIMEOUT_S = 60


# --- fixtures and helpers --------------------------------------------------------------------------------------


@pytest.fixture
def db(empty_home, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    """An engine on the test home's registry, with our UID configured."""
    monkeypatch.setenv("ROADWORK_UID", str(seed.OUR_UID))
    engine = make_engine(load_settings().db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def history(db) -> seed.History:  # noqa: ANN001
    return seed.seed_history(db, load_settings())


def _sign_in(at: AppTest, engine) -> None:  # noqa: ANN001
    """Sign the AppTest session in as an operator, when the app has a sign-in (it checks the users table too)."""
    try:
        from roadwork.dashboard.auth import SESSION_KEY, SignedIn
        from roadwork.platform import users
    except ImportError:
        return
    if users.get_user(engine, "tester") is None:
        users.create_user(engine, "tester", "correct-horse-battery", "operator", users.local_actor("test"))
    at.session_state[SESSION_KEY] = SignedIn("tester", "operator", utcnow() + dt.timedelta(hours=1))


def open_page(page: str, engine) -> AppTest:  # noqa: ANN001
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    _sign_in(at, engine)
    at.run()
    assert not at.exception, at.exception
    if page != OVERVIEW:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def text(at: AppTest) -> str:
    kinds = ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


def metric(at: AppTest, label: str):  # noqa: ANN201 - a Metric element
    found = [x for x in at.metric if x.label == label or x.label.startswith(label)]
    assert len(found) == 1, f"expected one metric {label!r}: {[x.label for x in at.metric]}"
    return found[0]


def table(at: AppTest, column: str):  # noqa: ANN201 - pandas DataFrame
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1, f"expected one table with column {column!r}, found {len(frames)}"
    return frames[0]


def figure(at: AppTest, key: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(charts) == 1, f"expected one chart {key!r}"
    return json.loads(charts[0].proto.spec)


# --- overview ----------------------------------------------------------------------------------------------------


def test_overview_shows_standing_countdown_runs_alerts_and_failures(history, db) -> None:
    at = open_page(OVERVIEW, db)
    page = shown_text(at)
    assert "Champion: roadwork-ops:0.3.0" in page

    # Standing: rank 3 -> 2 of 9 miners, numbers from the last good snapshot, marked stale.
    rank = metric(at, "Rank (of 9 miners)")
    assert (rank.value, rank.delta) == ("2", "-1")
    incentive = metric(at, "Incentive")
    assert (incentive.value, incentive.delta) == ("0.0850", "+0.0150")
    assert metric(at, "Emission (alpha)").value == "1.2000"
    assert (metric(at, "Trust").value, metric(at, "Trust").delta) == ("0.600", "+0.100")
    assert "Stale: the last poll" in page and "HTTP 503 from the API" in page
    trend = figure(at, "overview_standing_trend")
    assert [t["name"] for t in trend["data"]] == ["incentive", "rank"]
    assert trend["data"][1]["y"] == [3, 2]

    # Champion deployed CHAMPION_DAYS ago: 45 - 10 days of full reward left, 90 - 10 until zero.
    assert "roadwork-ops:0.3.0" in page
    assert metric(at, "Days until the decay starts").value == f"{45 - seed.CHAMPION_DAYS:.1f}"
    assert metric(at, "Reward factor").value == "1.00"
    assert metric(at, "Days until zero reward").value == f"{90 - seed.CHAMPION_DAYS:.1f}"
    assert at.get("progress")[0].proto.value == round(100 * seed.CHAMPION_DAYS / 90)

    # Next runs: every built-in scheduled job, soonest first, in local time.
    runs = table(at, "scheduled job")
    scheduled = {job_id for job_id, spec in JOBS.items() if spec.scheduled}
    assert set(runs["scheduled job"]) == scheduled
    shown = list(runs["next run"].dt.to_pydatetime())
    assert shown == sorted(shown)
    stored = {j["id"]: j["next_run_time"] for j in stored_jobs(db)}
    first = runs["scheduled job"].iloc[0]
    assert shown[0] == local(stored[first])

    # Open alerts of the last 24 h, newest first; the two-day-old one is gone.
    alerts = table(at, "alert")
    assert list(alerts["alert"]) == ["stale", "rank_drop"]

    # Failures newest first; the scheduler's job_failed audit event duplicates the failed run and is dropped.
    failures = table(at, "failure")
    assert list(failures["failure"]) == ["deploy_failed", "missed", "failed"]
    assert list(failures["what"]) == ["roadwork-ops:0.4.0", "mine", "evaluate_champion"]
    assert failures["detail"].iloc[2] == "RuntimeError: replay set missing"


def test_overview_countdown_when_the_reward_decays(db) -> None:
    now = utcnow()
    from roadwork.db.engine import write_session

    with write_session(db) as session:
        version = seed._version(session, "0.1.0", 1, None, now)
        seed._deploy(session, version, now - dt.timedelta(days=60))
    at = open_page(OVERVIEW, db)
    assert metric(at, "Days until the decay starts").value == "0.0"
    assert metric(at, "Reward factor").value == f"{1 - 15 / 45:.2f}"
    assert metric(at, "Days until zero reward").value == "30.0"
    assert "decaying since day 45" in at.get("progress")[0].proto.text
    assert any("Retraining is due" in rendered(w.value) for w in at.warning)


def test_empty_registry_shows_every_empty_state(db) -> None:
    at = open_page(OVERVIEW, db)
    assert not at.exception
    infos = [i.value for i in at.info]
    assert infos[0].startswith("No champion yet")
    assert any(i.startswith("No standings yet: set `leaderboard.source`") for i in infos)
    assert any(i.startswith("No scheduled jobs yet") for i in infos)
    assert "No alerts in the last 24 h." in infos
    assert any(i.startswith("No failures") for i in infos)
    assert not at.get("progress")

    at = open_page(MODELS, db)
    assert [i.value for i in at.info] == ["No versions yet: run `roadwork demo` or `roadwork train`."]


def test_overview_without_uid_or_good_snapshot(db, monkeypatch: pytest.MonkeyPatch) -> None:
    seed.poll_standings(db, load_settings(), seed._Snapshot(error="timeout"), utcnow())
    at = open_page(OVERVIEW, db)
    assert "No good snapshot yet: every poll so far failed." in [i.value for i in at.info]
    assert "Stale: the last poll" in text(at)


# --- models ------------------------------------------------------------------------------------------------------


def test_models_heatmap_sweep_calibration_and_lineage(history, db) -> None:
    at = open_page(MODELS, db)
    ids = history.ids

    heat = figure(at, "models_condition_heatmap")["data"][0]
    assert heat["type"] == "heatmap"
    # Rows newest first; 0.1.0 falls back to validation (with daytime=Dark); 0.2.0's newer validation (scene)
    # does not replace its replay cells.
    assert heat["y"] == ["0.4.0", "0.3.0 ★", "0.2.0", "0.1.0"]
    assert "daytime=Dark" in heat["x"] and "scene=Highway" not in heat["x"]
    assert len(heat["x"]) == 10
    assert [len(row) for row in heat["z"]] == [10] * 4
    assert all(v == 0 for v in heat["z"][1] if v is not None)
    assert heat["z"][0][heat["x"].index("level=0")] == pytest.approx(0.78 - 0.75)
    assert heat["customdata"][1][heat["x"].index("level=0")][:2] == [50, 0.75]
    assert "customdata[0]" in heat["hovertemplate"] and "customdata[4]" in heat["hovertemplate"]

    # The champion is selected by default: its sweep, calibration, validator score, TTA and lineage.
    assert at.selectbox(key="models_selected_version").value == ids["0.3.0"]
    sweep = figure(at, "models_sweep_chart")["data"]
    assert [t["name"] for t in sweep] == ["MCC", "calibrated threshold 0.610", "best threshold 0.610"]
    calibration = figure(at, "models_calibration_chart")["data"][0]
    assert (calibration["x"], calibration["y"]) == ([0.0, 0.61, 1.0], [0.0, 0.5, 1.0])
    assert metric(at, "MCC").value == "0.750"
    assert metric(at, "Expected score").value == f"{0.75 ** 3:.3f}"
    before_after = table(at, "before calibration")
    assert before_after.set_index("metric").loc["mcc"].tolist() == pytest.approx([0.72, 0.75])
    assert list(table(at, "n_views")["variant"]) == ["none", "flip"]
    lineage = table(at, "lineage version")
    assert list(lineage["lineage version"]) == ["roadwork-ops:0.3.0", "roadwork-ops:0.2.0", "roadwork-ops:0.1.0"]
    assert list(lineage["MCC from"]) == ["replay", "replay", "validation"]
    assert list(lineage["code revision"]) == ["rev3", "rev2", "rev1"]

    # Another version: its own sweep and calibration, its ablation and its hard-negative set.
    at.selectbox(key="models_selected_version").select(ids["0.4.0"]).run()
    assert not at.exception
    assert figure(at, "models_calibration_chart")["data"][0]["x"] == [0.0, 0.55, 1.0]
    assert figure(at, "models_sweep_chart")["data"][2]["x"] == [0.55]
    lineage = table(at, "lineage version")
    assert len(lineage) == 4 and lineage["hard negatives"].iloc[0] == "mined-0.3.0 (#1, 42 items)"
    assert list(table(at, "variant")["variant"]) == ["full", "no hard negatives"]

    # 0.2.0's condition cells come from its replay, not its newer validation evaluation.
    at.selectbox(key="models_selected_version").select(ids["0.2.0"]).run()
    assert len(table(at, "condition")) == 9 and "scene" not in set(table(at, "condition")["condition"])

    # A version with a validation evaluation only: no sweep, said so.
    at.selectbox(key="models_selected_version").select(ids["0.1.0"]).run()
    assert not at.exception
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("-models_sweep_chart")]
    assert "No threshold sweep stored with this evaluation." in text(at)


def test_models_page_says_whether_the_calibration_was_applied_with_the_held_out_numbers(history, db) -> None:
    at = open_page(MODELS, db)
    # The champion (0.3.0): its fitted cut held up on the held-out replay.
    assert [s.value for s in at.success if "Calibration" in s.value] == [
        "Calibration applied: the fitted cut 0.610 is mapped onto the validators' 0.5."]
    assert metric(at, "Held-out MCC, raw").value == "0.700"
    calibrated = metric(at, "Held-out MCC, calibrated")
    assert (calibrated.value, calibrated.delta) == ("0.730", "+0.030")
    assert "checked on 400 held-out challenges (seed 2)" in text(at) and "[+0.015, +0.060]" in text(at)

    # 0.4.0: the cut lowered the held-out MCC (0.648 -> 0.624), so the raw probability is answered.
    at.selectbox(key="models_selected_version").select(history.ids["0.4.0"]).run()
    assert not at.exception and not [s for s in at.success if "Calibration" in s.value]
    assert any(i.value.startswith("Calibration not applied: the fitted cut 0.660") for i in at.info)
    calibrated = metric(at, "Held-out MCC, calibrated")
    assert (metric(at, "Held-out MCC, raw").value, calibrated.value, calibrated.delta) == ("0.648", "0.624", "-0.024")

    # 0.1.0 has no stored decision: said so, no numbers.
    at.selectbox(key="models_selected_version").select(history.ids["0.1.0"]).run()
    assert "No calibration decision stored with this version" in text(at)
    assert not [x for x in at.metric if x.label.startswith("Held-out")]


def test_existing_models_content_still_renders(history, db) -> None:
    at = open_page(MODELS, db)
    versions = table(at, "training val MCC")
    assert list(versions["version"]) == ["0.4.0", "0.3.0", "0.2.0", "0.1.0"]
    assert list(versions["champion"]) == [False, True, False, False]
    assert figure(at, "models_mcc_chart")["data"][0]["name"] == "latest evaluation MCC"
    assert len(table(at, "condition")) == 9  # the champion's latest evaluation (replay) cells


# --- queries -------------------------------------------------------------------------------------------------


def _count_queries(engine, fn):  # noqa: ANN001, ANN202
    statements = []

    def record(conn, cursor, statement, *args) -> None:  # noqa: ANN001, ANN002
        if statement.strip().upper() != "BEGIN":
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        result = fn()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return result, len(statements)


def test_condition_matrix_costs_the_same_queries_for_a_long_history(db) -> None:
    seed.seed_long_history(db, n_versions=60, n_cells=10)
    engine = context.engine()
    st.cache_data.clear()
    matrix, queries = _count_queries(engine, lambda: model_queries.condition_matrix(30))
    assert len(matrix.rows) == 31  # the newest 30 and the (older) champion
    assert matrix.rows[0] == "1.59.0" and matrix.rows[-1] == "1.15.0 ★"
    assert matrix.champion_row == 30 and matrix.total_versions == 60
    assert queries == 3  # versions, the champion alias, one joined query for every row's cells
    detail, queries = _count_queries(engine, lambda: model_queries.version_detail(matrix.version_ids[0]))
    assert len(detail.lineage) == 1 + model_queries.LINEAGE_DEPTH
    assert queries == 3  # the evaluation, the recursive lineage, the lineage's evaluations


def test_latest_condition_cells_prefers_replay(history, db) -> None:
    with read_session(db) as session:
        found = repo.latest_condition_cells(session, history.ids.values())
    assert {v: found[i].kind for v, i in history.ids.items()} == {
        "0.1.0": "validation", "0.2.0": "replay", "0.3.0": "replay", "0.4.0": "replay"}
    assert len(found[history.ids["0.3.0"]].cells) == 9


def test_merge_failures_drops_duplicate_job_failed() -> None:
    t = dt.datetime(2026, 1, 1, 12)
    run = repo.JobRun(1, "train", "failed", t, t, t, 1.0, None, "boom\ntrace", None, "schedule", t)
    dup = repo.AuditEvent(1, "scheduler", "job_failed", "train", "boom", None, t + dt.timedelta(seconds=2))
    other = repo.AuditEvent(2, "scheduler", "job_failed", "mine", "oops", None, t - dt.timedelta(hours=1))
    rows = overview_queries.merge_failures([run], [dup, other], limit=10)
    assert [(r.what, r.status, r.detail) for r in rows] == [("train", "failed", "boom"), ("mine", "job_failed", "oops")]


# --- chart builders ---------------------------------------------------------------------------------------------


def test_condition_heatmap_colors_by_difference_to_the_reference() -> None:
    mcc = [[0.8, None, 0.6], [0.7, 0.5, None]]
    n = [[10, None, 30], [11, 12, None]]
    low = [[0.7, None, None], [0.6, 0.4, None]]
    high = [[0.9, None, None], [0.8, 0.6, None]]
    fig = model_charts.condition_heatmap(["b", "a"], ["x=1", "x=2", "y=1"], mcc, n, low, high, reference_row=1)
    heat = fig.data[0]
    assert heat.type == "heatmap"
    assert [list(r) for r in heat.z] == [[pytest.approx(0.1), None, None], [0.0, 0.0, None]]
    assert list(heat.customdata[0][0]) == [10, 0.8, 0.7, 0.9, "CI [0.700, 0.900]"]
    assert heat.customdata[0][2][4] == "CI -"
    assert heat.zmid == 0 and "Δ" in heat.hovertemplate
    assert fig.layout.yaxis.autorange == "reversed"
    plain = model_charts.condition_heatmap(["a"], ["x=1"], [[0.5]], [[3]], [[None]], [[None]])
    assert list(plain.data[0].z[0]) == [0.5] and plain.data[0].zmid is None


def test_threshold_sweep_and_calibration_traces() -> None:
    fig = model_charts.threshold_sweep([0.0, 0.5, 1.0], [0.1, 0.8, 0.0], best_threshold=0.5, best_mcc=0.8,
                                         calibrated_threshold=0.45)
    assert [t.name for t in fig.data] == ["MCC", "calibrated threshold 0.450", "best threshold 0.500"]
    assert list(fig.data[1].x) == [0.45, 0.45]
    assert (list(fig.data[2].x), list(fig.data[2].y)) == ([0.5], [0.8])
    assert [t.name for t in model_charts.threshold_sweep([0.0, 1.0], [0.0, 0.0]).data] == ["MCC"]

    cal = model_charts.calibration_curve(0.7)
    assert [t.name for t in cal.data] == ["calibration", "identity", "threshold"]
    assert (list(cal.data[0].x), list(cal.data[0].y)) == ([0.0, 0.7, 1.0], [0.0, 0.5, 1.0])
    assert (list(cal.data[2].x), list(cal.data[2].y)) == ([0.7], [0.5])


def test_standing_trend_has_incentive_and_reversed_rank() -> None:
    times = [dt.datetime(2026, 1, 1, h) for h in range(3)]
    fig = overview_charts.standing_trend(times, [0.1, 0.2, None], [5, 3, None])
    assert [t.name for t in fig.data] == ["incentive", "rank"]
    assert fig.data[1].yaxis == "y2" and list(fig.data[1].y) == [5, 3, None]
    assert fig.layout.yaxis2.autorange == "reversed"


# --- timing (printed, not asserted) ---------------------------------------------------------------------------


def test_render_time_with_a_long_history(db, capsys: pytest.CaptureFixture) -> None:
    seed.seed_long_history(db, n_versions=200, n_cells=40)
    st.cache_data.clear()
    start = time.perf_counter()
    at = open_page(OVERVIEW, db)
    timings = {OVERVIEW: time.perf_counter() - start}
    st.cache_data.clear()
    start = time.perf_counter()
    at.switch_page(MODELS).run()
    timings[MODELS] = time.perf_counter() - start
    assert not at.exception, at.exception
    heat = figure(at, "models_condition_heatmap")["data"][0]
    assert (len(heat["y"]), len(heat["x"])) == (31, 40)
    with capsys.disabled():
        print("\nrender with 200 versions x 40 cells, cold caches (the first includes starting the app): "
              + ", ".join(f"{p} {s:.2f} s" for p, s in timings.items()))
