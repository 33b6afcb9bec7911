"""The synthetic NATIX-schema dataset generator."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from roadwork.trainer.data.synth import CITIES, SynthReport, synthesize

EXPECTED_TYPES = {
    "image": pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    "id": pa.string(),
    "width": pa.int64(),
    "height": pa.int64(),
    "license": pa.string(),
    "flickr_url": pa.string(),
    "coco_url": pa.string(),
    "date_captured": pa.string(),
    "gps": pa.string(),
    "city_name": pa.string(),
    "scene_description": pa.string(),
    "video_info": pa.struct([("frame_id", pa.int64()), ("seq_id", pa.string()), ("vid_id", pa.string())]),
    "scene_level_tags": pa.struct(
        [
            ("daytime", pa.string()),
            ("scene_environment", pa.string()),
            ("travel_alteration", pa.string()),
            ("weather", pa.string()),
        ]
    ),
    "label": pa.int64(),
}

N = 200


@pytest.fixture(scope="module")
def synth200(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthReport, list[dict]]:
    report = synthesize(tmp_path_factory.mktemp("s200"), N, seed=0)
    return report, pq.read_table(report.path).to_pylist()


def test_writes_the_hf_file_name_atomically(synth200: tuple[SynthReport, list[dict]]) -> None:
    report, rows = synth200
    assert report.path.name == "train-00000-of-00001.parquet"
    assert report.path.parent.name == "data"
    assert report.path.is_file()
    assert [p.name for p in report.path.parent.iterdir()] == [report.path.name]  # no temp file left over
    assert report.n_rows == len(rows) == N
    assert report.n_positive == sum(r["label"] for r in rows)
    assert report.n_corrupt == 0


def test_schema_columns_and_types_exactly(synth200: tuple[SynthReport, list[dict]]) -> None:
    report, _ = synth200
    schema = pq.read_schema(report.path)
    assert schema.names == list(EXPECTED_TYPES)
    for name, typ in EXPECTED_TYPES.items():
        assert schema.field(name).type == typ, name


def test_same_seed_is_identical_and_other_seed_differs(tmp_path: Path, synth200: tuple[SynthReport, list[dict]]) -> None:
    report, rows = synth200
    again = synthesize(tmp_path / "again", N, seed=0)
    assert pq.read_table(again.path).equals(pq.read_table(report.path))
    assert again.path.read_bytes() == report.path.read_bytes()

    other = pq.read_table(synthesize(tmp_path / "other", N, seed=1).path).to_pylist()
    assert sum(a["image"]["bytes"] != b["image"]["bytes"] for a, b in zip(rows, other)) == N
    assert [r["label"] for r in rows] != [r["label"] for r in other]
    assert {r["id"] for r in rows}.isdisjoint(r["id"] for r in other)


def test_rows_do_not_depend_on_n(tmp_path: Path, synth200: tuple[SynthReport, list[dict]]) -> None:
    _, rows = synth200
    small = pq.read_table(synthesize(tmp_path, 7, seed=0).path).to_pylist()
    assert small == rows[:7]


def test_labels_balanced_and_ids_unique(synth200: tuple[SynthReport, list[dict]]) -> None:
    _, rows = synth200
    share = sum(r["label"] for r in rows) / N
    assert 0.38 <= share <= 0.62
    assert {r["label"] for r in rows} == {0, 1}
    assert len({r["id"] for r in rows}) == N


def test_descriptions_agree_with_labels(synth200: tuple[SynthReport, list[dict]]) -> None:
    _, rows = synth200
    pos = [r["scene_description"] for r in rows if r["label"] == 1]
    neg = [r["scene_description"] for r in rows if r["label"] == 0]
    # label 1: a real sentence, except the few deliberately missing (null) ones
    assert all(d is None or (isinstance(d, str) and len(d.strip()) > 10) for d in pos)
    assert 0 < sum(d is None for d in pos) <= 0.15 * len(pos)
    # label 0: never a non-empty description
    assert all(d is None or d == "" for d in neg)
    assert any(d == "" for d in neg) and any(d is None for d in neg)


def test_metadata_deliberately_missing_sometimes(synth200: tuple[SynthReport, list[dict]]) -> None:
    _, rows = synth200

    def missing_share(get) -> float:  # noqa: ANN001
        return sum(get(r) in (None, "", "[]") for r in rows) / N

    tags = lambda r, k: (r["scene_level_tags"] or {}).get(k)  # noqa: E731
    for name, get in {
        "gps": lambda r: r["gps"],
        "city": lambda r: r["city_name"],
        "daytime": lambda r: tags(r, "daytime"),
        "scene": lambda r: tags(r, "scene_environment"),
        "weather": lambda r: tags(r, "weather"),
    }.items():
        assert 0.02 <= missing_share(get) <= 0.25, name
    present = [tags(r, "weather") for r in rows if tags(r, "weather") not in (None, "", "[]")]
    assert all(re.fullmatch(r"\[('[A-Za-z ]+'(, )?)+\]", w) for w in present)
    assert {tags(r, "daytime") for r in rows} >= {"Light", "Dark"}
    assert {tags(r, "scene_environment") for r in rows} >= {"Highway", "Urban", "Residential", "Rural"}
    assert {r["city_name"] for r in rows if r["city_name"]} <= {c[0] for c in CITIES}


def _parse_gps(s: str) -> tuple[float, float, str]:
    if m := re.fullmatch(r"POINT\((-?\d+\.\d+) (-?\d+\.\d+)\)", s):
        return float(m[2]), float(m[1]), "wkt"
    if m := re.fullmatch(r"\((-?\d+\.\d+), (-?\d+\.\d+)\)", s):
        return float(m[1]), float(m[2]), "paren"
    m = re.fullmatch(r"(-?\d+\.\d+),\s?(-?\d+\.\d+)", s)
    assert m, s
    return float(m[1]), float(m[2]), "plain"


def test_gps_near_the_city_in_several_formats(synth200: tuple[SynthReport, list[dict]]) -> None:
    _, rows = synth200
    coords = {name: (lat, lon) for name, lat, lon in CITIES}
    formats = set()
    for r in rows:
        if not r["gps"]:
            continue
        lat, lon, fmt = _parse_gps(r["gps"])
        formats.add(fmt)
        if r["city_name"]:
            clat, clon = coords[r["city_name"]]
            assert abs(lat - clat) < 0.1 and abs(lon - clon) < 0.1, (r["gps"], r["city_name"])
    assert formats == {"plain", "paren", "wkt"}


def test_images_are_jpegs_matching_width_and_height(synth200: tuple[SynthReport, list[dict]]) -> None:
    _, rows = synth200
    sizes = set()
    for r in rows:
        img = Image.open(io.BytesIO(r["image"]["bytes"]))
        img.load()
        assert img.format == "JPEG" and img.mode == "RGB"
        assert img.size == (r["width"], r["height"])
        assert 320 <= r["width"] <= 512
        assert abs(r["width"] / r["height"] - 4 / 3) < 0.02 or abs(r["width"] / r["height"] - 16 / 9) < 0.02
        sizes.add(img.size)
        assert r["image"]["path"].endswith(".jpg")
    assert len(sizes) > 5


def test_positive_images_contain_roadwork_orange(synth200: tuple[SynthReport, list[dict]]) -> None:
    """A weak content check: positives have a clearly visible orange object far more often than negatives."""
    import numpy as np

    _, rows = synth200

    def orange_share(data: bytes) -> float:
        a = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((96, 72)), dtype=np.int16)
        r, g, b = a[..., 0], a[..., 1], a[..., 2]
        return float(((r > 1.6 * g) & (g > 1.4 * b) & (r > 70)).mean())

    pos = [orange_share(r["image"]["bytes"]) > 0.004 for r in rows if r["label"] == 1]
    neg = [orange_share(r["image"]["bytes"]) > 0.004 for r in rows if r["label"] == 0]
    assert sum(pos) / len(pos) > 0.85
    assert 0.0 < sum(neg) / len(neg) < 0.35  # distractors exist, but not everywhere


def test_corrupt_rows_are_deterministic_and_keep_valid_columns(tmp_path: Path) -> None:
    clean = pq.read_table(synthesize(tmp_path / "clean", 60, seed=3).path).to_pylist()
    report = synthesize(tmp_path / "bad", 60, seed=3, corrupt_fraction=0.1)
    assert report.n_corrupt == 6
    bad = pq.read_table(report.path).to_pylist()
    changed = [i for i, (a, b) in enumerate(zip(clean, bad)) if a["image"]["bytes"] != b["image"]["bytes"]]
    assert len(changed) == 6
    kinds = []
    for i in changed:
        data, orig = bad[i]["image"]["bytes"], clean[i]["image"]["bytes"]
        if data == b"":
            kinds.append("zero")
        elif orig.startswith(data):
            kinds.append("truncated")
            assert len(data) == int(len(orig) * 0.4)
        else:
            kinds.append("garbage")
        # everything but the bytes is untouched
        assert {k: v for k, v in bad[i].items() if k != "image"} == {k: v for k, v in clean[i].items() if k != "image"}
    assert sorted(kinds) == ["garbage", "garbage", "truncated", "truncated", "zero", "zero"]
    again = pq.read_table(synthesize(tmp_path / "bad2", 60, seed=3, corrupt_fraction=0.1).path)
    assert again.equals(pq.read_table(report.path))


def test_progress_reports_every_row(tmp_path: Path) -> None:
    seen: list[int] = []
    report = synthesize(tmp_path, 12, seed=2, progress=seen.append)
    assert seen == list(range(1, 13))
    assert report.n_rows == 12


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="corrupt_fraction"):
        synthesize(tmp_path, 5, corrupt_fraction=1.5)
    with pytest.raises(ValueError, match="n must be"):
        synthesize(tmp_path, -1)
    assert not (tmp_path / "data" / "train-00000-of-00001.parquet").exists()


def test_fast_enough(tmp_path: Path) -> None:
    started = time.perf_counter()
    synthesize(tmp_path, 100, seed=9)
    assert time.perf_counter() - started < 10.0  # ~0.7 s on one core; 600 rows take ~4 s
