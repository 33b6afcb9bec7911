"""The operations pages (Jobs, A/B tests, Hard negatives, Leaderboard) through AppTest on a seeded registry.

Each page runs as a script of its own (`AppTest.from_file(page)`), signed in as an operator or a viewer. Every
control that changes state has a key starting with `act_`: a viewer must see none of them, and an operator's
action must write exactly one scheduler command and one audit event, with the operator and the reason.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from roadwork.clock import utcnow
from roadwork.dashboard import auth, services
from roadwork.dashboard import ops_services as ops
from roadwork.dashboard.charts import ab_tests as ab_charts
from roadwork.dashboard.charts import hard_negatives as hard_negative_charts
from roadwork.dashboard.charts import leaderboard as leaderboard_charts
from roadwork.dashboard.formatting import NO_VALUE, local
from roadwork.dashboard.queries import hard_negatives, jobs, leaderboard
from roadwork.db import repo
from roadwork.db.engine import dispose_engines, make_engine, read_session
from roadwork.cron import next_fire_times
from roadwork.platform.jobs import catalog
from roadwork.settings import load_settings
from tests.conftest import ROOT
from tests.dashboard.conftest import OPS_OPERATOR, OPS_VIEWER, rendered, shown_text, use_home
from tests.dashboard.ops_seed import (
    OUR_UID,
    STALE_ERROR_PART,
    create_user,
)

PAGES_DIR = ROOT / "roadwork" / "dashboard" / "views"
PAGES = ["jobs", "ab_tests", "hard_negatives", "leaderboard"]
OPERATOR, VIEWER = OPS_OPERATOR, OPS_VIEWER
TIMEOUT_S = 30


# --- fixtures ----------------------------------------------------------------------------------------------------


def same_schedule(shown: str, configured: str) -> bool:
    """The stored trigger names weekdays (`mon`) where the settings may number them (`1`): same fire times."""
    return next_fire_times(shown, 10) == next_fire_times(configured, 10)


@pytest.fixture
def bare_home(tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty, migrated registry but for the operator."""
    home = use_home(tmp_path, template_db, monkeypatch)
    engine = make_engine(load_settings().db_url)
    try:
        create_user(engine, OPERATOR, "operator")
    finally:
        engine.dispose()
    yield home
    st.cache_data.clear()
    st.cache_resource.clear()
    dispose_engines()


@pytest.fixture
def read_db():  # noqa: ANN201 - a context-manager factory
    engines = []

    def opener():  # noqa: ANN202
        engines.append(make_engine(load_settings().db_url))
        return read_session(engines[-1])

    yield opener
    for engine in engines:
        engine.dispose()


# --- helpers -----------------------------------------------------------------------------------------------------


def open_page(page: str, role: str | None = "operator") -> AppTest:
    at = AppTest.from_file(str(PAGES_DIR / f"{page}.py"), default_timeout=TIMEOUT_S)
    if role is not None:
        name = OPERATOR if role == "operator" else VIEWER
        at.session_state[auth.SESSION_KEY] = auth.SignedIn(name, role, utcnow() + dt.timedelta(hours=1))
    at.run()
    assert not at.exception, at.exception
    return at


def keys(at: AppTest) -> set[str]:
    return {node.key for node in [*at.main, *at.sidebar] if getattr(node, "key", None)}


def text(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")
             for e in at.get(kind)]
    parts += [p.proto.text for p in at.get("progress")]
    return "\n".join(str(p) for p in parts)


def table(at: AppTest, column: str):  # noqa: ANN201 - pandas DataFrame; read-only tables keep no key
    frames = [d for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1, f"expected one table with a {column!r} column, found {len(frames)}"
    return frames[0]


def written(read_db) -> tuple[list[repo.Command], list[repo.AuditEvent]]:  # noqa: ANN001
    with read_db() as session:
        return repo.list_commands(session), [a for a in repo.list_audit(session) if a.action.endswith("_requested")]


def assert_one_command(read_db, kind: str, payload: dict, reason: str) -> repo.Command:  # noqa: ANN001
    commands, audit = written(read_db)
    assert [(c.kind, c.payload, c.requested_by, c.reason, c.status) for c in commands] == [
        (kind, payload, OPERATOR, reason, "pending")
    ]
    assert [(a.actor, a.action, a.reason, a.details["command_id"]) for a in audit] == [
        (OPERATOR, f"{kind}_requested", reason, commands[0].id)
    ]
    return commands[0]


def assert_nothing_written(read_db) -> None:  # noqa: ANN001
    assert written(read_db) == ([], [])


# --- every page, every role ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_viewers_see_the_data_and_no_control(ops_home, page) -> None:
    operator, viewer, anonymous = open_page(page), open_page(page, "viewer"), open_page(page, None)
    assert any(k.startswith("act_") for k in keys(operator)) or page in ("hard_negatives", "leaderboard")
    for at in (viewer, anonymous):
        assert not [k for k in keys(at) if k.startswith("act_")]
        assert not at.button and not at.text_input and not at.get("form")
        assert len(at.dataframe) >= 1
    tables = [(tuple(d.value.columns), d.value.shape) for d in operator.dataframe]
    assert all((tuple(d.value.columns), d.value.shape) in tables for d in viewer.dataframe)  # the same data


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_on_an_empty_registry(bare_home, page) -> None:
    at = open_page(page)
    assert at.info or at.caption


def test_a_forged_write_from_a_viewer_is_refused(ops_home, read_db) -> None:
    st.session_state[auth.SESSION_KEY] = auth.SignedIn(VIEWER, "viewer", utcnow() + dt.timedelta(hours=1))
    try:
        with pytest.raises(services.RequestError):
            ops.request_job_command("pause", "train", "because", VIEWER)
        with pytest.raises(services.RequestError):
            ops.request_ab_test(ops_home.version_ids["0.1.0"], ops_home.version_ids["0.3.0"], 100, "x", VIEWER)
    finally:
        st.session_state.pop(auth.SESSION_KEY, None)
    assert_nothing_written(read_db)


# --- jobs ----------------------------------------------------------------------------------------------------------


def test_jobs_shows_schedules_running_runs_and_a_log(ops_home) -> None:
    at = open_page("jobs", "viewer")
    schedules = table(at, "cron (UTC)").value
    assert {"train", "mine", "leaderboard", "model_age", "evaluate_champion"} <= set(schedules["job"])
    settings = load_settings()
    train = schedules[schedules["job"] == "train"].iloc[0]
    assert same_schedule(train["cron (UTC)"], catalog.cron(settings, "train")) and train["state"] == "scheduled"
    assert f"`mine` (run #{ops_home.runs['started']}) running for 5 min" in text(at)

    runs = table(at, "trigger").value
    assert list(runs["#"]) == [ops_home.runs[k] for k in ("started", "failed", "succeeded")]
    assert list(runs["status"]) == ["started", "failed", "succeeded"]
    assert list(runs["duration"]) == [NO_VALUE, "42 s", "1 h"]

    at.selectbox(key="jobs_log_run").select(ops_home.runs["failed"]).run()
    log = at.code[0].value
    assert log.splitlines()[-1] == "RuntimeError: replay set missing"
    assert len(log.splitlines()) == 200 and "line 049" not in log and "line 050" in log
    assert "the last 200 lines" in text(at)


def test_running_job_shows_the_last_line_of_its_log(ops_home) -> None:
    logs = load_settings().logs_dir / "jobs"
    logs.mkdir(parents=True)
    (logs / f"mine-{utcnow():%Y%m%dT%H%M%S%f}Z.log").write_text("# mine started\nscored 640 of 2000 images\n")
    assert "Log: scored 640 of 2000 images" in text(open_page("jobs", "viewer"))


@pytest.mark.parametrize(
    ("button", "kind", "job_id"),
    [("act_job_pause", "pause", "train"), ("act_job_resume", "resume", "mine"),
     ("act_job_run_now", "run_now", "evaluate_champion"), ("act_job_run_now", "run_now", "pseudo_label")],
)
def test_operator_job_actions_write_a_command(ops_home, read_db, button, kind, job_id) -> None:
    at = open_page("jobs")
    at.selectbox(key="act_job_id").select(job_id)
    at.text_input(key="act_job_reason").input("nightly data refreshed")
    at.button(key=button).click().run()
    assert not at.exception and not at.error
    command = assert_one_command(read_db, kind, {"job_id": job_id}, "nightly data refreshed")
    assert f"(command #{command.id})" in rendered(at.success[0].value)
    shown = table(at, "outcome").value
    assert list(shown["#"]) == [command.id] and list(shown["status"]) == ["pending"]


def test_operator_cancels_a_running_job(ops_home, read_db) -> None:
    at = open_page("jobs")
    assert at.selectbox(key="act_cancel_job").value == "mine"
    at.text_input(key="act_cancel_reason").input("wrong pool")
    at.button(key="act_cancel_submit").click().run()
    assert_one_command(read_db, "cancel", {"job_id": "mine"}, "wrong pool")


def test_an_action_without_a_reason_writes_nothing(ops_home, read_db) -> None:
    at = open_page("jobs")
    at.text_input(key="act_job_reason").input("   ")
    at.button(key="act_job_pause").click().run()
    assert [rendered(e.value) for e in at.error] == ["A reason is required."]
    assert_nothing_written(read_db)


def test_reschedule_previews_the_next_runs_then_writes_a_command(ops_home, read_db) -> None:
    at = open_page("jobs")
    at.selectbox(key="act_sched_job").select("train").run()
    assert same_schedule(at.text_input(key="act_sched_cron_train").value, catalog.cron(load_settings(), "train"))
    at.text_input(key="act_sched_cron_train").input("15 4 * * *").run()
    preview = [local(t) for t in next_fire_times("15 4 * * *", 5)]
    shown = text(at)
    assert all(f"- {t:%a %Y-%m-%d %H:%M}" in shown for t in preview)
    assert_nothing_written(read_db)  # a preview writes nothing

    at.text_input(key="act_sched_reason").input("quieter hour")
    at.button(key="act_sched_submit").click().run()
    assert not at.error
    assert_one_command(read_db, "reschedule", {"job_id": "train", "cron": "15 4 * * *"}, "quieter hour")


@pytest.mark.parametrize("weekday", ["0", "7", "sun"])
def test_the_weekday_hint_says_what_the_preview_does(ops_home, weekday: str) -> None:
    at = open_page("jobs")
    at.selectbox(key="act_sched_job").select("train").run()
    assert "0 and 7 are Sunday, 1 is Monday" in text(at)
    at.text_input(key="act_sched_cron_train").input(f"0 12 * * {weekday}").run()
    runs = [line for line in text(at).splitlines() if line.startswith("- ")]
    assert len(runs) == 5 and all(line.startswith("- Sun ") for line in runs), runs


def test_an_invalid_cron_shows_an_error_and_writes_nothing(ops_home, read_db) -> None:
    at = open_page("jobs")
    at.selectbox(key="act_sched_job").select("train").run()
    at.text_input(key="act_sched_cron_train").input("61 * * * *").run()
    assert len(at.error) == 1 and "invalid cron expression '61 * * * *'" in rendered(at.error[0].value)
    at.text_input(key="act_sched_reason").input("try")
    at.button(key="act_sched_submit").click().run()
    assert len(at.error) == 1 and "invalid cron expression" in rendered(at.error[0].value) and not at.success
    assert_nothing_written(read_db)


# --- A/B tests -----------------------------------------------------------------------------------------------------


def test_ab_tests_list_and_results(ops_home) -> None:
    at = open_page("ab_tests", "viewer")
    tests = table(at, "verdict").value
    assert list(tests["#"]) == [ops_home.ab_test_id]
    assert list(tests[["A", "B", "status"]].iloc[0]) == ["roadwork-ops:0.2.0", "roadwork-ops:0.3.0", "done"]
    verdict = tests["verdict"].iloc[0]
    assert f"(`{verdict}`), on 400 paired challenges" in text(at)
    arms = table(at, "expected reward").value
    assert list(arms["arm"]) == ["A: roadwork-ops:0.2.0", "B: roadwork-ops:0.3.0"]
    assert [m.label for m in at.metric] == ["MCC(B) - MCC(A)", "McNemar p", "Expected reward (B - A)"]
    diff = arms["MCC"].iloc[1] - arms["MCC"].iloc[0]
    assert at.metric[0].value == f"{diff:+.4f}"
    assert at.get("plotly_chart")


def test_operator_requests_an_ab_test(ops_home, read_db) -> None:
    ids = ops_home.version_ids
    at = open_page("ab_tests")
    at.selectbox(key="act_ab_a").select(ids["0.1.0"])
    at.selectbox(key="act_ab_b").select(ids["0.3.0"])
    at.number_input(key="act_ab_n").set_value(300)
    at.text_input(key="act_ab_reason").input("is 0.3.0 better than 0.1.0?")
    at.button(key="act_ab_submit").click().run()
    assert not at.error
    command = assert_one_command(read_db, "create_ab_test", {"a": ids["0.1.0"], "b": ids["0.3.0"], "sample_size": 300},
                                 "is 0.3.0 better than 0.1.0?")
    assert list(table(at, "outcome").value["#"]) == [command.id]


def test_an_ab_test_of_one_version_is_refused(ops_home, read_db) -> None:
    at = open_page("ab_tests")
    at.selectbox(key="act_ab_a").select(ops_home.version_ids["0.2.0"])
    at.selectbox(key="act_ab_b").select(ops_home.version_ids["0.2.0"])
    at.text_input(key="act_ab_reason").input("same")
    at.button(key="act_ab_submit").click().run()
    assert "two different versions" in rendered(at.error[0].value)
    assert_nothing_written(read_db)


# --- hard negatives ------------------------------------------------------------------------------------------------


def test_hard_negatives_show_counts_and_a_gallery(ops_home) -> None:
    at = open_page("hard_negatives", "viewer")
    sets = table(at, "confident mistakes").value
    assert list(sets[["#", "items", "confident mistakes", "uncertain"]].iloc[0]) == [ops_home.set_id, 9, 4, 5]
    assert sets["source version"].iloc[0] == "roadwork-ops:0.2.0"
    counts = table(at, "condition").value
    assert sorted(zip(counts["value"], counts["confident_mistake"], counts["uncertain"], strict=True)) == [
        ("Clear", 2, 2), ("Rain", 2, 2), ("unknown", 0, 1)]

    captions = [rendered(c) for image in at.get("image") for c in image.captions]
    assert len(captions) == len(ops_home.pool_ids) == 8  # every item found in the pool has a thumbnail
    assert all(any(c.startswith(rid[:40]) for c in captions) for rid in ops_home.pool_ids)
    assert ops_home.missing_id in shown_text(at)  # the item missing from the pool is shown by id

    at.selectbox(key="hn_reason").select("confident_mistake").run()
    assert len([c for image in at.get("image") for c in image.captions]) == 4


def test_hard_negatives_without_their_pool_show_ids(ops_home) -> None:
    hidden = ops_home.pool.with_name("pool-moved")
    ops_home.pool.rename(hidden)
    try:
        at = open_page("hard_negatives", "viewer")
    finally:
        hidden.rename(ops_home.pool)
    assert not at.get("image")
    assert "is not on this machine" in text(at)
    assert all(rid in shown_text(at) for rid in ops_home.pool_ids)


# --- leaderboard ---------------------------------------------------------------------------------------------------


def test_leaderboard_shows_the_stale_badge_and_highlights_us(ops_home) -> None:
    at = open_page("leaderboard", "viewer")
    shown = text(at)
    assert "stale]" in shown  # st.badge
    warning = rendered(at.warning[0].value)
    assert STALE_ERROR_PART in warning
    assert f"{local(ops_home.stale_taken_at):%Y-%m-%d %H:%M}) failed" in warning
    assert f"the last good snapshot was taken {local(ops_home.good_taken_at):%Y-%m-%d %H:%M}" in warning

    board = table(at, "us")
    rows = board.value
    assert list(rows.loc[rows["us"], "uid"]) == [OUR_UID]
    ours = rows.index[rows["us"]][0]
    assert rows.loc[ours, "place"] == 3  # incentives 0.30, 0.22, then ours 0.20; the validator has no place
    styles = board.proto.arrow_data.styler.styles
    assert f"_row{ours}_col0" in styles and all(f"_row{i}_" not in styles for i in rows.index if i != ours)
    assert at.metric[0].value == "3 of 7"  # seven miners: the validator is not one


def test_leaderboard_compares_us_with_competitors_over_time(ops_home) -> None:
    at = open_page("leaderboard", "viewer")
    assert at.multiselect(key="lb_uids").value == [OUR_UID, 1, 2, 4]
    at.multiselect(key="lb_uids").set_value([OUR_UID, 1]).run()
    charts = {c.key: c for c in at.get("plotly_chart")}
    assert {"lb_place_chart", "lb_incentive_chart", "lb_histogram"} <= set(charts)
    trends = leaderboard.trends([OUR_UID])[OUR_UID]
    assert [p.rank for p in trends] == [4, 3, 3] and [p.incentive for p in trends] == [0.10, 0.15, 0.20]


# --- pure helpers and chart builders ---------------------------------------------------------------------------------


def test_cron_of_reads_the_stored_trigger_description() -> None:
    assert jobs.cron_of("cron 0 3 * * mon (UTC)") == "0 3 * * mon"
    assert jobs.cron_of("every 60 s") is None and jobs.cron_of("once at 2025-01-01T00:00:00") is None


def test_miner_views_place_miners_like_derive_standing() -> None:
    from roadwork.platform.standings import MinerRow, derive_standing

    rows = (MinerRow(0, incentive=0.0, validator_permit=True), MinerRow(1, incentive=0.3),
            MinerRow(2, incentive=0.2), MinerRow(3, incentive=0.2), MinerRow(4, incentive=None))
    views = leaderboard.miner_views(rows, our_uid=3)
    assert [(v.uid, v.place, v.ours, v.validator) for v in views] == [
        (1, 1, False, False), (2, 2, False, False), (3, 2, True, False), (4, 4, False, False), (0, None, False, True)]
    assert derive_standing(rows, 3).rank == 2


def test_condition_counts_per_value_and_reason() -> None:
    from roadwork.platform.mining import HardNegativeItemInfo

    def item(reason: str, conditions: dict | None) -> HardNegativeItemInfo:
        return HardNegativeItemInfo(0, 1, "r", 0, 0.9, reason, conditions)

    items = [item("uncertain", {"weather": "Rain", "daytime": "day"}), item("uncertain", {"weather": "Rain"}),
             item("confident_mistake", None)]
    assert [(c.condition, c.value, c.reason, c.n) for c in hard_negatives.condition_counts(items)] == [
        ("conditions", "unknown", "confident_mistake", 1), ("daytime", "day", "uncertain", 1),
        ("weather", "Rain", "uncertain", 2)]


def test_read_log_tail_reads_only_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    monkeypatch.setattr(jobs, "LOG_TAIL_BYTES", 200)
    tail = jobs.read_log_tail(str(log), 5)
    assert tail.text.splitlines() == [f"line {i}" for i in range(995, 1000)] and tail.truncated
    assert jobs.read_log_tail(str(tmp_path / "gone.log")).error.startswith("cannot read the log")


def test_ops_chart_builders() -> None:

    arms = ab_charts.ab_arm_mcc(["A: m:0.1.0", "B: m:0.2.0"], [0.5, 0.6], [0.4, 0.55], [0.6, 0.7])
    assert list(arms.data[0].y) == [0.5, 0.6]
    assert list(arms.data[0].error_y.array) == pytest.approx([0.1, 0.1])
    assert list(arms.data[0].error_y.arrayminus) == pytest.approx([0.1, 0.05])
    when = [dt.datetime(2025, 1, 1, h) for h in (1, 2)]
    lines = leaderboard_charts.standing_lines({"UID 3 (us)": list(zip(when, [4, 3], strict=True)), "UID 1": []},
                                      ours="UID 3 (us)", y_title="place", reverse=True)
    assert [t.name for t in lines.data] == ["UID 3 (us)", "UID 1"] and lines.data[0].line.width == 4
    assert lines.layout.yaxis.autorange == "reversed"
    histogram = leaderboard_charts.incentive_histogram([0.1, 0.2, 0.3], ours=0.2)
    assert list(histogram.data[0].x) == [0.1, 0.2, 0.3] and histogram.layout.shapes[0].x0 == 0.2
    counts = hard_negative_charts.hard_negative_counts(["weather=Rain"], {"uncertain": [2], "confident_mistake": [1]})
    assert [t.name for t in counts.data] == ["uncertain", "confident_mistake"] and counts.layout.barmode == "stack"
