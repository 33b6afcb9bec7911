"""The Ablations page through AppTest on a temporary registry whose studies are written through
`roadwork.db.repo.ablations`, and its pure helpers and chart builder against hand-computed values."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TypeVar

import pandas as pd
import pytest
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from roadwork.dashboard.charts import ablations as charts_ablation
from roadwork.dashboard.queries import ablations as abl
from roadwork.db.repo import ablations as store
from roadwork.db.repo.ablations import AblationRow, AblationStudy
from roadwork.db.engine import make_engine, write_session
from roadwork.settings import load_settings
from roadwork.trainer.config import TrainConfig
from tests.dashboard.conftest import Login, app, page_text, rendered, sign_in

PAGE = "views/ablations.py"
CREATE_COMMAND = "roadwork ablate --config configs/tiny.yaml --components gps_sampling,augmentation --seeds 0,1,2"
CONFIG = TrainConfig().to_dict()  # the tiny preset: gps sampling and augmentation off, views on

# Three seeds. gps_sampling on: per-seed differences to the base 0.05, 0.10, 0.02 -> delta 0.056667, and the
# Student t interval (t(0.975, 2) = 4.3027, sd 0.040415) [-0.044, +0.157]; augmentation on: -0.05, -0.02, -0.06
# -> -0.043333, sd 0.020817, [-0.095, +0.008] (checked with scipy.stats.t).
BASE_MCC = [0.50, 0.60, 0.70]
GPS_MCC, GPS_DELTA, GPS_CI = [0.55, 0.70, 0.72], 0.17 / 3, (-0.044, 0.157)
AUG_MCC, AUG_DELTA, AUG_CI = [0.45, 0.58, 0.64], -0.13 / 3, (-0.095, 0.008)
T = TypeVar("T")


def _write(build: Callable[[Session], T]) -> T:
    """Run `build` in one write session on the test home's registry; returns what it returns."""
    engine = make_engine(load_settings().db_url)
    try:
        with write_session(engine) as s:
            return build(s)
    finally:
        engine.dispose()


def seed_three_seed_study() -> int:
    def build(s: Session) -> int:
        study = store.create_study(s, config_name="tiny", config=CONFIG, seeds=[0, 1, 2],
                                   components=["gps_sampling", "augmentation"], actor="cli")
        store.add_row(s, study.id, component="base", direction="base", mcc=BASE_MCC, mean_mcc=0.6, delta=None,
                      ci_low=None, ci_high=None, seconds=30.0)
        store.add_row(s, study.id, component="gps_sampling", direction="on", mcc=GPS_MCC, mean_mcc=sum(GPS_MCC) / 3,
                      delta=GPS_DELTA, ci_low=GPS_CI[0], ci_high=GPS_CI[1], seconds=31.0)
        store.add_row(s, study.id, component="augmentation", direction="on", mcc=AUG_MCC,
                      mean_mcc=sum(AUG_MCC) / 3, delta=AUG_DELTA, ci_low=AUG_CI[0], ci_high=AUG_CI[1], seconds=35.0)
        store.finish_study(s, study.id, "finished")
        return study.id

    return _write(build)


def seed_one_seed_study() -> int:
    def build(s: Session) -> int:
        study = store.create_study(s, config_name="tiny-1seed", config=CONFIG, seeds=[7], components=["views"],
                                   actor="cli")
        store.add_row(s, study.id, component="base", direction="base", mcc=[0.6], mean_mcc=0.6, delta=None,
                      ci_low=None, ci_high=None, seconds=10.0)
        store.add_row(s, study.id, component="views", direction="off", mcc=[0.48], mean_mcc=0.48, delta=-0.12,
                      ci_low=None, ci_high=None, seconds=8.0)
        store.finish_study(s, study.id, "finished")
        return study.id

    return _write(build)


def open_page(login: Login) -> AppTest:
    at = sign_in(app(), login).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Ablations"]
    return at


def table(at: AppTest, column: str) -> pd.DataFrame:
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1, f"expected one table with column {column!r}, found {len(frames)}"
    return frames[0]


def figure(at: AppTest) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith("-ablations_chart")]
    assert len(charts) == 1, "expected the deltas chart"
    return json.loads(charts[0].proto.spec)


# --- the page ------------------------------------------------------------------------------------------------------


def test_empty_registry_says_how_to_create_a_study(empty_home, viewer) -> None:
    at = open_page(viewer)
    assert CREATE_COMMAND in at.info[0].value
    assert not at.dataframe and not at.get("plotly_chart") and not at.selectbox


def test_studies_show_deltas_intervals_chart_and_base_config(empty_home, viewer) -> None:
    older, newer = seed_three_seed_study(), seed_one_seed_study()
    at = open_page(viewer)
    select = at.selectbox(key="ablations_study")
    assert select.options[0].startswith(f"#{newer} tiny-1seed") and select.options[1].startswith(f"#{older} tiny")
    assert "finished · seeds 0,1,2 · gps_sampling, augmentation" in select.options[1]

    # Newest first: the one-seed study, whose interval is undefined.
    assert select.value == newer
    one = table(at, "95% CI")
    assert list(one["component"]) == ["base", "views"] and list(one["MCC seed 7"]) == pytest.approx([0.6, 0.48])
    assert list(one["95% CI"]) == ["", "n/a"]
    assert figure(at)["data"][0]["x"] == pytest.approx([-0.12])

    select.select(older).run()
    assert not at.exception, at.exception
    rows = table(at, "95% CI")
    assert list(rows["component"]) == ["base", "gps_sampling", "augmentation"]
    assert list(rows["direction"]) == ["base", "on", "on"]
    assert list(rows["MCC seed 1"]) == pytest.approx([0.60, 0.70, 0.58])
    assert list(rows["mean MCC"]) == pytest.approx([0.6, 0.656667, 0.556667], abs=1e-6)
    assert math.isnan(rows["delta"][0]) and list(rows["delta"][1:]) == pytest.approx([0.056667, -0.043333], abs=1e-6)
    assert list(rows["95% CI"]) == ["", "-0.044..+0.157", "-0.095..+0.008"]

    bars = figure(at)["data"][0]
    assert bars["orientation"] == "h" and bars["y"] == ["gps_sampling on", "augmentation on"]
    assert bars["x"] == pytest.approx([GPS_DELTA, AUG_DELTA])

    assert any(s.value.startswith("Finished") for s in at.success)
    switches = table(at, "studied").set_index("component")
    assert switches.loc["gps_sampling", "state"] == "off" and switches.loc["gps_sampling", "studied"]
    assert switches.loc["views", "state"] == "on" and not switches.loc["views", "studied"]
    assert '"split_seed": 0' in at.code[0].value  # the config JSON in the expander


def test_failed_and_running_studies_say_so(empty_home, operator) -> None:
    def build(s: Session) -> tuple[int, int]:
        running = store.create_study(s, config_name="tiny", config=CONFIG, seeds=[0, 1], components=["moe"],
                                     actor="cli")
        failed = store.create_study(s, config_name="tiny", config=CONFIG, seeds=[0, 1],
                                    components=["gps_sampling", "augmentation"], actor="cli")
        store.add_row(s, failed.id, component="base", direction="base", mcc=[0.5, 0.6], mean_mcc=0.55, delta=None,
                      ci_low=None, ci_high=None, seconds=20.0)
        store.finish_study(s, failed.id, "failed", error="RuntimeError: CUDA out of memory")
        return running.id, failed.id

    running, failed = _write(build)
    at = open_page(operator)
    assert at.selectbox(key="ablations_study").value == failed
    assert len(at.error) == 1 and "RuntimeError: CUDA out of memory" in rendered(at.error[0].value)
    assert "0 of 2 components done" in rendered(at.error[0].value)
    assert "Not run: gps_sampling, augmentation." in page_text(at)
    assert list(table(at, "95% CI")["component"]) == ["base"]
    assert not at.get("plotly_chart")  # no variant, no deltas

    at.selectbox(key="ablations_study").select(running).run()
    assert not at.exception, at.exception
    assert not at.error and at.info[0].value.startswith("Running since")
    assert "No results yet" in page_text(at)


def test_viewer_and_operator_see_the_same_page(empty_home, viewer, operator) -> None:
    seed_three_seed_study()
    seen = []
    for login in (viewer, operator):
        at = open_page(login)
        main = at.main  # the sidebar says who is signed in
        shown = [e.value for kind in ("subheader", "markdown", "caption", "info", "error", "success", "code")
                 for e in main.get(kind)]
        tables = [d.value.to_json() for d in main.dataframe]  # JSON: NaN == NaN
        seen.append((shown, tables, len(main.button)))
    assert seen[0] == seen[1] and seen[0][2] == 0  # read-only: no button for anyone


# --- pure helpers and the chart builder ------------------------------------------------------------------------------


def _row(delta: float | None, ci_low: float | None = None, ci_high: float | None = None) -> AblationRow:
    return AblationRow(id=1, study_id=1, component="x", direction="off", mcc=[0.1], mean_mcc=0.1, delta=delta,
                       ci_low=ci_low, ci_high=ci_high, seconds=1.0, created_at=None)


def test_ci_text_formats_interval_one_seed_and_base() -> None:
    assert abl.ci_text(_row(-0.02, -0.0512, 0.0104)) == "-0.051..+0.010"
    assert abl.ci_text(_row(-0.02)) == "n/a"
    assert abl.ci_text(_row(None)) == ""


def test_key_switches_read_the_base_config() -> None:
    switches = {s.component: s for s in abl.key_switches(CONFIG, ["gps_sampling"])}
    assert (switches["gps_sampling"].key, switches["gps_sampling"].value) == ("sampling.gps.enabled", False)
    assert switches["gps_sampling"].state == "off" and switches["gps_sampling"].studied
    assert switches["focal_loss"].state == "on" and not switches["focal_loss"].studied  # loss.gamma 2.0
    assert switches["view_pruning"].state == "off"  # placement "none"
    post = {"model": {"pruning": {"placement": "post"}}}
    by_name = {s.component: s for s in abl.key_switches(post)}
    assert by_name["view_pruning"].state == "on" and by_name["pre_backbone_pruning"].state == "other"
    assert by_name["rope"].value is None and by_name["rope"].state == "other"  # a key the config lacks


def test_table_rows_and_not_run_follow_the_seed_order() -> None:
    study = AblationStudy(id=1, config_name="tiny", config={}, seeds=[3, 1], components=["gafm", "rope"],
                          data_fingerprint=None, status="running", error=None, actor="cli", created_at=None,
                          finished_at=None, rows=(_row(None),))
    (row,) = abl.table_rows(study)
    assert (row["MCC seed 3"], row["MCC seed 1"]) == (0.1, None)  # a row shorter than the seeds: blank, no error
    assert abl.not_run(study) == ["gafm", "rope"] and abl.variants(study) == []


def test_ablation_deltas_draws_signed_bars_with_intervals_and_a_zero_line() -> None:
    fig = charts_ablation.ablation_deltas(["gps_sampling off", "augmentation on", "views off"], [-0.05, 0.02, 0.0],
                                          [-0.08, -0.01, None], [-0.02, 0.06, None])
    (bars,) = fig.data
    assert bars.type == "bar" and bars.orientation == "h"
    assert list(bars.y) == ["gps_sampling off", "augmentation on", "views off"]
    assert list(bars.x) == [-0.05, 0.02, 0.0]
    assert list(bars.error_x.array) == pytest.approx([0.03, 0.04, 0.0])  # up to ci_high; none without a CI
    assert list(bars.error_x.arrayminus) == pytest.approx([0.03, 0.03, 0.0])
    assert list(bars.marker.color) == [charts_ablation.LOSS_COLOR, charts_ablation.GAIN_COLOR,
                                       charts_ablation.TRAIN_COLOR]
    assert list(bars.customdata) == ["[-0.080, -0.020]", "[-0.010, +0.060]", "n/a"]
    (zero,) = fig.layout.shapes
    assert (zero.type, zero.x0, zero.x1) == ("line", 0, 0)
    assert fig.layout.yaxis.autorange == "reversed"  # the first variant on top
