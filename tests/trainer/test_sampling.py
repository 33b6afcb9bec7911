"""GPS-weighted sampling: haversine, k-means centres, bracket weights, the sampler and its report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from roadwork.trainer.data.records import Record
from roadwork.trainer.data.sampling import (
    EARTH_RADIUS_KM,
    GpsWeighting,
    bracket_weights,
    fit_centres,
    gps_sampler,
    gps_weights,
    haversine_km,
    load_targets,
    make_sampler,
    nearest_km,
    sampling_report,
)

NY, LA, LONDON, PARIS = (40.7128, -74.0060), (34.0522, -118.2437), (51.5074, -0.1278), (48.8566, 2.3522)


def test_haversine_known_distances() -> None:
    assert haversine_km(*NY, *LA) == pytest.approx(3936, rel=0.01)
    assert haversine_km(*LONDON, *PARIS) == pytest.approx(344, rel=0.01)
    assert haversine_km(*NY, *NY) == 0.0
    assert haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_RADIUS_KM)  # antipodes
    assert haversine_km(0, 0, 90, 0) == pytest.approx(math.pi / 2 * EARTH_RADIUS_KM)
    assert haversine_km(0, 179.9, 0, -179.9) == pytest.approx(0.2 * math.pi / 180 * EARTH_RADIUS_KM)  # antimeridian
    assert haversine_km(*LA, *NY) == haversine_km(*NY, *LA)


def test_haversine_is_vectorised() -> None:
    lat = np.array([NY[0], LA[0], LONDON[0]])
    lon = np.array([NY[1], LA[1], LONDON[1]])
    d = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])  # (3, 3)
    assert d.shape == (3, 3)
    assert np.allclose(np.diag(d), 0) and np.allclose(d, d.T)
    assert d[0, 1] == pytest.approx(haversine_km(*NY, *LA))


def test_nearest_km_with_missing_rows() -> None:
    pts = np.array([NY, LA, [np.nan, np.nan], PARIS])
    d = nearest_km(pts, np.array([NY, LONDON]))
    assert d[0] == 0.0 and d[1] == pytest.approx(3936, rel=0.01)
    assert np.isnan(d[2]) and d[3] == pytest.approx(344, rel=0.01)


def test_bracket_weights_defaults_and_configured() -> None:
    d = np.array([0.0, 49.9, 50.0, 199.9, 200.0, 499.0, 500.0, 12000.0, np.nan])
    assert bracket_weights(d).tolist() == [5.0, 5.0, 2.5, 2.5, 1.0, 1.0, 0.3, 0.3, 1.0]
    cfg = GpsWeighting(edges_km=(10.0, 100.0), weights=(3.0, 2.0, 0.0), missing_weight=0.5)
    assert bracket_weights(d, cfg).tolist() == [3.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]
    with pytest.raises(ValueError):
        GpsWeighting(weights=(1.0, 2.0))
    with pytest.raises(ValueError):
        GpsWeighting(edges_km=(200.0, 50.0, 500.0))
    with pytest.raises(ValueError):
        GpsWeighting(missing_weight=-1.0)


def test_rows_without_gps_get_the_configured_weight() -> None:
    rows = [NY, None, "null", "garbage", "95,10", "POINT(-74.006 40.7128)"]
    w, d = gps_weights(rows, np.array([NY]), GpsWeighting(missing_weight=0.7))
    assert w.tolist() == [5.0, 0.7, 0.7, 0.7, 0.7, 5.0]
    assert np.isnan(d[1:5]).all()


def test_fit_centres_kmeans_and_targets_from_files(tmp_path) -> None:
    rng = np.random.default_rng(0)
    cloud = [np.array(c) + rng.normal(0, 0.01, (30, 2)) for c in (NY, LA, LONDON)]
    targets = np.concatenate(cloud)
    centres = fit_centres(targets, n_clusters=3, seed=0)
    assert centres.shape == (3, 2)
    assert max(nearest_km(np.array([NY, LA, LONDON]), centres)) < 5.0  # one centre per city
    assert np.array_equal(centres, fit_centres(targets, n_clusters=3, seed=0))  # fixed seed: same centres
    assert fit_centres(np.array([NY, NY]), n_clusters=8).shape == (1, 2)  # k capped at distinct points
    with pytest.raises(ValueError):
        fit_centres(np.empty((0, 2)))

    (tmp_path / "t.csv").write_text("name,Latitude,Longitude\nny,40.7128,-74.006\nbad,,\nla,34.0522,-118.2437\n")
    (tmp_path / "g.csv").write_text("gps\n\"40.7128,-74.006\"\nPOINT(-118.2437 34.0522)\n")
    (tmp_path / "t.json").write_text(json.dumps([[40.7128, -74.006], {"lat": 34.0522, "lng": -118.2437},
                                                 "POINT(-0.1278 51.5074)", None, [200, 0]]))
    expect = np.array([NY, LA])
    assert np.allclose(load_targets(tmp_path / "t.csv"), expect)
    assert np.allclose(load_targets(str(tmp_path / "g.csv")), expect)
    assert np.allclose(load_targets(tmp_path / "t.json"), [NY, LA, LONDON])
    rec = Record(id="a", image_bytes=b"", label=0, width=1, height=1, gps="40.7128, -74.006", city=None,
                 scene_description=None, daytime=None, scene=None, travel_alteration=None, weather=None, source="real")
    assert np.allclose(load_targets([rec, NY, "bad"]), [NY, NY])
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lat"):
        load_targets(tmp_path / "x.csv")


def _constructed_case(n: int = 1000, seed: int = 0) -> tuple[list, list]:
    """Targets around New York; training rows: half within 10 km of them, half about 1000 km east."""
    rng = np.random.default_rng(seed)
    targets = [(NY[0] + a, NY[1] + b) for a, b in rng.uniform(-0.02, 0.02, (40, 2))]
    km_per_lon_deg = 111.32 * math.cos(math.radians(NY[0]))
    near = [(NY[0] + a, NY[1] + b) for a, b in rng.uniform(-0.05, 0.05, (n // 2, 2))]
    far = [(NY[0] + a, NY[1] + 1000 / km_per_lon_deg + b) for a, b in rng.uniform(-0.05, 0.05, (n // 2, 2))]
    return targets, near + far


def test_sampler_report_on_constructed_case() -> None:
    targets, rows = _constructed_case()
    g = gps_sampler(rows, targets, GpsWeighting(n_clusters=4), n_report_draws=20_000)
    assert np.nanmax(g.distances_km[:500]) < 10.0 and np.nanmin(g.distances_km[500:]) > 900.0
    r = g.report
    expected = 5.0 / (5.0 + 0.3)  # = 0.943
    assert r["weighted"]["share_within_50km"] == pytest.approx(expected, abs=0.03)
    assert r["weighted"]["share_within_100km"] == pytest.approx(expected, abs=0.03)
    assert r["uniform"]["share_within_50km"] == pytest.approx(0.5, abs=0.03)
    assert r["weighted"]["mean_distance_km"] < 0.3 * r["uniform"]["mean_distance_km"]
    assert r["rows_per_bracket"] == {"<50km": 500, "50-200km": 0, "200-500km": 0, ">=500km": 500, "no_gps": 0}
    assert r["n_draws"] == 20_000 and r["n_rows_with_gps"] == 1000 and len(r["centres"]) == 4
    json.dumps(r)  # JSON-able
    assert len(g.sampler) == 1000  # one epoch = one draw per row by default


def test_report_counts_rows_without_gps() -> None:
    targets, rows = _constructed_case(200)
    rows = rows[:100] + [None] * 100  # half near, half without GPS (weight 1.0 vs 5.0)
    g = gps_sampler(rows, targets, GpsWeighting(missing_weight=1.0), n_report_draws=20_000)
    assert g.report["weighted"]["share_without_gps"] == pytest.approx(1 / 6, abs=0.02)
    assert g.report["uniform"]["share_without_gps"] == pytest.approx(0.5, abs=0.02)
    assert g.report["weighted"]["share_within_50km"] == 1.0  # among sampled rows that have GPS
    none = sampling_report(np.full(5, np.nan), np.ones(5), n_draws=100)
    assert math.isnan(none["weighted"]["share_within_50km"]) and none["weighted"]["share_without_gps"] == 1.0


def test_sampler_is_deterministic_for_a_seed() -> None:
    w = np.random.default_rng(1).random(500)
    a = list(make_sampler(w, 2000, seed=7))
    assert a == list(make_sampler(w, 2000, seed=7))
    assert a != list(make_sampler(w, 2000, seed=8))
    targets, rows = _constructed_case(200)
    r1 = gps_sampler(rows, targets, GpsWeighting(seed=3), n_report_draws=2000)
    r2 = gps_sampler(rows, targets, GpsWeighting(seed=3), n_report_draws=2000)
    assert r1.report == r2.report and list(r1.sampler) == list(r2.sampler)
    zero_w = make_sampler(np.array([0.0, 1.0, 0.0]), 50, seed=0)
    assert set(zero_w) == {1}
    with pytest.raises(ValueError):
        make_sampler(np.zeros(3))
    with pytest.raises(ValueError):
        make_sampler(np.array([1.0, np.nan]))
