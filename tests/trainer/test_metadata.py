"""NULL-safe metadata parsing and the categorical vocabularies."""

from __future__ import annotations

import json

import pytest

from roadwork.trainer.data.records import read_records
from roadwork.trainer.data.metadata import (
    GPS_STATUSES,
    NULL_TOKEN,
    MetadataVocab,
    ParsedMetadata,
    build_vocab,
    is_missing,
    parse_gps,
    parse_gps_status,
    parse_record,
    parse_records,
    parse_text,
    parse_weather,
    parse_weather_status,
)
from roadwork.trainer.data.synth import CITIES, synthesize

NY = (40.7128, -74.006)
MISSING = [None, "", "   ", "null", "NULL", "None", "none", "nan", "NaN", "[]", float("nan"), b"null"]


@pytest.mark.parametrize(
    "text",
    [
        "40.7128,-74.0060",
        "40.7128, -74.0060",
        " 40.7128 ,  -74.006 ",
        "40.7128 -74.0060",
        "40.7128;-74.0060",
        "+40.7128,-74.006",
        "(40.7128, -74.0060)",
        "(40.7128,-74.006)",
        "[40.7128, -74.006]",
        "POINT(-74.0060 40.7128)",
        "POINT (-74.006 40.7128)",
        "point(-74.006 40.7128)",
        "SRID=4326;POINT(-74.006 40.7128)",
        "40.7128N 74.0060W",
        "40.7128 N, 74.0060 W",
        "40.7128° N, 74.0060° W",
        "40.7128n,74.006w",
        "N40.7128 W74.0060",
        "N 40.7128, W 74.006",
        "74.0060W 40.7128N",  # hemisphere letters fix the order
        b"40.7128,-74.006",
        (40.7128, -74.006),
        ["40.7128", "-74.006"],
    ],
)
def test_gps_formats(text: object) -> None:
    got, status = parse_gps_status(text)
    assert status == "ok"
    assert got == pytest.approx(NY)


def test_gps_degrees_minutes_seconds_and_hemisphere_signs() -> None:
    lat, lon = parse_gps("40°42'46\"N 74°0'22\"W")
    assert lat == pytest.approx(40 + 42 / 60 + 46 / 3600)
    assert lon == pytest.approx(-(74 + 22 / 3600))
    assert parse_gps("33.8688S 151.2093E") == pytest.approx((-33.8688, 151.2093))  # Sydney
    assert parse_gps("-33.8688,151.2093") == pytest.approx((-33.8688, 151.2093))
    assert parse_gps(".5,-.5") == pytest.approx((0.5, -0.5))


@pytest.mark.parametrize(
    "text", ["90.0001,0", "-91,10", "10,180.5", "10,-200", "POINT(200 10)", "95N 10E", "(100, 100)"]
)
def test_gps_out_of_range_rejected_and_counted(text: str) -> None:
    assert parse_gps_status(text) == (None, "out_of_range")


def test_gps_range_edges_and_null_island() -> None:
    assert parse_gps("90,180") == (90.0, 180.0)
    assert parse_gps("-90,-180") == (-90.0, -180.0)
    assert parse_gps_status("0,0") == (None, "zero")
    assert parse_gps_status("POINT(0 0)") == (None, "zero")


@pytest.mark.parametrize(
    "text",
    [
        "hello", "40.7", "1,2,3", "40.7128,", ",-74", "abc,def", "nan,1", "inf,1", "1e5,2", "40.7N 74.0N",
        "74W 40E", "-40.7N 74W", "40°70'N 74W", "POINT(1)", "POINT(1 2", "40.7128,-74.0060 extra", "x" * 500,
        "{'lat': 1}", 42, 4.2, True, (1,), (1, 2, 3), ("a", "b"), object(),
    ],
)
def test_gps_garbage_is_unparseable(text: object) -> None:
    assert parse_gps_status(text) == (None, "unparseable")


@pytest.mark.parametrize("value", MISSING)
def test_missing_markers(value: object) -> None:
    assert is_missing(value)
    assert parse_gps_status(value) == (None, "missing")
    assert parse_weather_status(value) == (None, "missing")
    assert parse_text(value) is None


def test_text_is_stripped_and_kept() -> None:
    assert parse_text("  Highway ") == "Highway"
    assert parse_text("Cones  narrow\nthe lane.") == "Cones narrow the lane."
    assert parse_text("Nonesuch") == "Nonesuch"  # only whole-value markers mean missing
    assert not is_missing(0) and not is_missing("0")


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("['Cloudy']", ("Cloudy",)),
        ("['Partly Cloudy']", ("Partly Cloudy",)),
        ("['Cloudy', 'Rain']", ("Cloudy", "Rain")),
        ('["Fog"]', ("Fog",)),
        ("[' Cloudy ', 'Cloudy', 'Rain']", ("Cloudy", "Rain")),  # stripped, deduplicated, order kept
        ("('Fog',)", ("Fog",)),
        ("Cloudy", ("Cloudy",)),  # a bare label
        (["Cloudy", "Rain"], ("Cloudy", "Rain")),
    ],
)
def test_weather_list_strings(text: object, labels: tuple[str, ...]) -> None:
    assert parse_weather_status(text) == (labels, "ok")
    assert parse_weather(text) == labels


@pytest.mark.parametrize("text", ["[]", " [ ] ", "['']", "['null', ' ']", "()"])
def test_weather_empty_lists_are_missing(text: str) -> None:
    assert parse_weather_status(text) == (None, "missing")


@pytest.mark.parametrize(
    "text",
    [
        "['Cloudy'", "[Cloudy]", "['Cloudy',, 'Rain']", "[1, 2]", "[['Cloudy']]", "{'Cloudy'}", "'Cloudy'",
        "__import__('os').system('true')", "[__import__('os')]", "['a' + 'b']", "[" * 2000 + "]" * 2000, "{}", 7,
    ],
)
def test_weather_malformed_is_none(text: object) -> None:
    assert parse_weather_status(text) == (None, "malformed")


def test_parse_record_from_record_and_from_raw_row() -> None:
    from roadwork.trainer.data.records import Record

    rec = Record(
        id="a", image_bytes=b"x", label=1, width=10, height=10, gps="POINT(-74.006 40.7128)", city=" New York ",
        scene_description="Cones on the right.", daytime="Light", scene="Urban", travel_alteration="Lane Shift",
        weather="['Cloudy', 'Rain']", source="real",
    )
    p = parse_record(rec)
    assert p == ParsedMetadata(
        gps=pytest.approx(NY), weather=("Cloudy", "Rain"), daytime="Light", scene="Urban",
        travel_alteration="Lane Shift", city="New York", description="Cones on the right.",
    )
    row = {"gps": None, "city_name": "", "scene_description": "null",
           "scene_level_tags": {"daytime": "Dark", "scene_environment": None, "weather": "[]"}}
    q = parse_record(row)
    assert (q.gps, q.gps_status, q.weather, q.weather_status) == (None, "missing", None, "missing")
    assert (q.daytime, q.scene, q.city, q.description) == ("Dark", None, None, None)
    flat = parse_record({"scene_level_tags.daytime": "Light", "scene_level_tags.weather": "['Fog']", "gps": "1,2"})
    assert (flat.daytime, flat.weather, flat.gps) == ("Light", ("Fog",), (1.0, 2.0))
    assert parse_record({}) == parse_record(object())  # nothing at all: everything missing


def test_vocab_reserves_null_and_round_trips_json() -> None:
    rows = [
        {"weather": "['Cloudy', 'Rain']", "daytime": "Light", "scene": "Urban"},
        {"weather": "['Clear']", "daytime": "Dark", "scene": "Highway"},
        {"weather": "[]", "daytime": None, "scene": ""},
        {"weather": "['Cloudy']", "daytime": "Light", "scene": "Urban"},
    ]
    vocab = build_vocab(rows)
    assert vocab.weather == (NULL_TOKEN, "Clear", "Cloudy", "Rain")
    assert vocab.daytime == (NULL_TOKEN, "Dark", "Light")
    assert vocab.scene == (NULL_TOKEN, "Highway", "Urban")
    assert vocab.index("daytime", None) == 0
    assert vocab.index("daytime", "Dusk") == 0  # unseen -> NULL
    assert vocab.index("scene", "Urban") == 2
    assert vocab.weather_indices(("Rain", "Snow")) == (3,)
    assert vocab.weather_indices(None) == (0,)
    assert vocab.encode(parse_record(rows[0])) == {"weather": (2, 3), "daytime": 2, "scene": 2}
    assert vocab.encode(parse_record({})) == {"weather": (0,), "daytime": 0, "scene": 0}

    data = json.loads(json.dumps(vocab.to_json()))
    assert MetadataVocab.from_json(data) == vocab
    assert build_vocab(rows, min_count=2).weather == (NULL_TOKEN, "Cloudy")
    with pytest.raises(ValueError, match="must start with"):
        MetadataVocab.from_json({"weather": ["Cloudy"], "daytime": [NULL_TOKEN], "scene": [NULL_TOKEN]})
    assert build_vocab([]) == MetadataVocab()


def test_every_synthetic_record_parses(tmp_path) -> None:
    synthesize(tmp_path, 40, seed=3)
    records, _ = read_records(tmp_path, validate_images=False)
    assert len(records) == 40
    parsed, report = parse_records(records)
    assert report.n == 40 and sum(report.gps.values()) == 40 and set(report.gps) == set(GPS_STATUSES)
    assert report.gps["ok"] + report.gps["missing"] == 40  # synth writes only valid or missing GPS
    assert report.weather["malformed"] == 0
    assert report.gps["ok"] >= 30
    for rec, p in zip(records, parsed):
        if p.gps is not None:  # within ~0.2 degrees of one of the 14 cities
            assert min(abs(p.gps[0] - lat) + abs(p.gps[1] - lon) for _, lat, lon in CITIES) < 0.2, rec.gps
        else:
            assert rec.gps is None
    vocab = build_vocab(parsed)
    assert vocab.daytime[0] == NULL_TOKEN and set(vocab.daytime[1:]) <= {"Light", "Dark"}
    assert set(vocab.scene[1:]) <= {"Highway", "Urban", "Residential", "Rural"}
    assert json.dumps(report.as_dict())
