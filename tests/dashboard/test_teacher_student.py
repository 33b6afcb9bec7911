"""The Models page puts a student beside its teacher: replay MCC overall and per condition cell on the same
replay, the difference, parameters, weights MB and CPU latency per image (stored at distill time)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from roadwork.dashboard.charts import models as charts
from roadwork.dashboard.formatting import NO_VALUE
from roadwork.db.engine import make_engine
from roadwork.settings import load_settings
from tests.dashboard import insight_seed as seed
from tests.dashboard.conftest import active_markup, app, rendered, shown_text, sign_in

MODELS = "views/models.py"
HOSTILE_NAME = "road*work_[x](https://evil.example)<b>"


@pytest.fixture
def distilled(empty_home) -> seed.Distilled:  # noqa: ANN001
    engine = make_engine(load_settings().db_url)
    try:
        return seed.seed_distillation(engine)
    finally:
        engine.dispose()


def models_page(operator, version_id: int) -> AppTest:  # noqa: ANN001
    at = sign_in(app(), operator).run()
    at.switch_page(MODELS).run()
    at.selectbox(key="models_selected_version").select(version_id).run()
    assert not at.exception, at.exception
    return at


def frame(at: AppTest, column: str):  # noqa: ANN201 - pandas DataFrame
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1, f"expected one table with column {column!r}, found {len(frames)}"
    return frames[0]


def side_by_side(at: AppTest) -> dict[str, list]:
    """The measure table: measure -> [teacher, student, student - teacher] as shown (None where the cell is empty)."""
    table = frame(at, "measure")
    return {row["measure"]: [None if pd.isna(v) else v for v in (row["teacher"], row["student"], row["student - teacher"])]
            for _, row in table.iterrows()}


def metric(at: AppTest, label: str):  # noqa: ANN201 - a Metric element
    found = [x for x in at.metric if x.label == label]
    assert len(found) == 1, [x.label for x in at.metric]
    return found[0]


def chart(at: AppTest, key: str) -> dict:
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, f"expected one chart {key!r}"
    return json.loads(found[0].proto.spec)


def test_a_student_is_shown_beside_its_teacher_on_the_same_replay(distilled, operator) -> None:
    at = models_page(operator, distilled.student)
    text = shown_text(at)
    assert "Teacher and student" in text
    assert "This version is a dinov2 student of roadwork-ops:0.1.0" in text and "cut 0.370" in text
    # Overall MCC on the replay both were scored on (not the teacher's newer seed-9 replay, nor the student's seed 3).
    assert f"same replay ({seed.SHARED_REPLAY}; 400 challenges, seed 0)" in text
    assert metric(at, "Teacher replay MCC").value == "0.800"
    student = metric(at, "Student replay MCC")
    assert (student.value, student.delta) == ("0.740", "-0.060")
    rows = side_by_side(at)
    assert rows["replay MCC"] == ["0.800", "0.740", "-0.060"]
    assert rows["parameters"] == ["632,076,802", "22,056,194", "-610,020,608"]
    assert rows["weights MB"] == ["2528.31", "88.25", "-2440.06"]
    assert rows["CPU ms per image"] == ["410.5", "12.2", "-398.2"]
    assert metric(at, "Student CPU ms per image").value == "12.2"
    assert "28.7x fewer parameters, 33.5x faster on the CPU" in text
    assert "median of 5 runs, 4 torch threads" in text

    # Per condition cell: both MCCs and the difference; the cell the student lacks is empty, not zero.
    cells = frame(at, "teacher MCC")
    by_cell = {f"{r['condition']}={r['value']}": r for _, r in cells.iterrows()}
    assert list(by_cell) == ["daytime=Dark", "level=0", "level=3", "weather=Rain"]
    assert by_cell["level=0"][["teacher MCC", "student MCC"]].tolist() == pytest.approx([0.9, 0.85])
    assert by_cell["level=0"]["student - teacher"] == pytest.approx(-0.05)
    assert by_cell["daytime=Dark"]["teacher MCC"] == pytest.approx(0.5)
    assert by_cell["daytime=Dark"][["student MCC", "student - teacher"]].isna().all()
    bars = chart(at, "models_teacher_student_chart")
    assert bars["layout"]["barmode"] == "group"
    assert [t["name"] for t in bars["data"]] == ["teacher", "student"]
    teacher_bars, student_bars = bars["data"]
    assert teacher_bars["x"] == student_bars["x"] == list(by_cell)
    assert teacher_bars["y"] == pytest.approx([0.5, 0.9, 0.6, 0.7])
    assert student_bars["y"][0] is None and student_bars["y"][1:] == pytest.approx([0.85, 0.62, 0.6])
    # Every table on the page shows a missing value as the dashboard's dash.
    assert {d.proto.placeholder for d in at.dataframe} == {NO_VALUE}


def test_a_teacher_shows_its_newest_student(distilled, operator) -> None:
    at = models_page(operator, distilled.teacher)
    text = shown_text(at)
    assert "Its newest student: roadwork-ops:0.3.0, a dinov2 student" in text
    assert side_by_side(at)["replay MCC"] == ["0.800", "0.740", "-0.060"]
    assert side_by_side(at)["CPU ms per image"] == ["410.5", "12.2", "-398.2"]
    assert chart(at, "models_teacher_student_chart")["data"][1]["y"][1] == pytest.approx(0.85)


def test_a_student_distilled_before_measuring_shows_dashes_for_size_and_latency(distilled, operator) -> None:
    at = models_page(operator, distilled.old_student)
    rows = side_by_side(at)
    assert rows["replay MCC"] == ["0.800", "0.600", "-0.200"]
    assert rows["parameters"] == rows["weights MB"] == rows["CPU ms per image"] == [None, None, None]
    assert [d.proto.placeholder for d in at.dataframe if "measure" in d.value.columns] == [NO_VALUE]  # shown as a dash
    assert metric(at, "Student CPU ms per image").value == NO_VALUE
    assert "Size and latency were not measured when this student was distilled" in shown_text(at)


def test_a_version_that_is_neither_teacher_nor_student_has_no_such_section(distilled, operator) -> None:
    at = models_page(operator, distilled.other)
    assert "Teacher and student" not in shown_text(at)
    assert not [x for x in at.metric if x.label == "Teacher replay MCC"]
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("-models_teacher_student_chart")]


def test_stored_names_in_the_section_are_plain_text(empty_home, operator) -> None:
    engine = make_engine(load_settings().db_url)
    try:
        ids = seed.seed_distillation(engine, name=HOSTILE_NAME)
    finally:
        engine.dispose()
    at = models_page(operator, ids.teacher)
    elements = [str(e.value) for e in (*at.caption, *at.markdown)]
    assert f"Its newest student: {HOSTILE_NAME}:0.3.0" in "\n".join(rendered(e) for e in elements)
    assert [kind for e in elements for kind in active_markup(e)] == []


def test_grouped_bars_leave_a_missing_cell_out() -> None:
    fig = charts.teacher_student_conditions(["a=1", "b=2"], [0.5, None], [-0.2, 0.4], [10, 20])
    assert fig.layout.barmode == "group" and fig.layout.yaxis.range == (-1.0, 1.0)
    assert [t.name for t in fig.data] == ["teacher", "student"]
    assert fig.data[0].y == (0.5, None) and list(fig.data[1].customdata) == [10, 20]
