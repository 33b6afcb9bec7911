"""The tolerant parquet reader, the split and the torch dataset."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from roadwork.trainer.data import images as images_mod
from roadwork.trainer.data import records as data_mod
from roadwork.trainer.data.records import (
    BadImageError,
    ImageDataset,
    Record,
    decode_image,
    find_parquet_files,
    read_records,
    split_records,
)
from roadwork.trainer.data.synth import synthesize


def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:  # noqa: ANN003
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _jpeg(color: tuple[int, int, int] = (200, 120, 30), size: tuple[int, int] = (40, 30)) -> bytes:
    return _encode(Image.new("RGB", size, color), "JPEG", quality=90)


def _write(path: Path, table: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _simple_table(images: list[bytes | None], labels: list, **extra: list) -> pa.Table:  # noqa: ANN003
    n = len(images)
    cols = {
        "image": pa.array([{"bytes": b, "path": f"{i}.jpg"} for i, b in enumerate(images)],
                          pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "id": pa.array([f"row{i}" for i in range(n)], pa.string()),
        "label": pa.array(labels),
    }
    cols.update({k: pa.array(v) for k, v in extra.items()})
    return pa.table(cols)


def _flatten_all(table: pa.Table) -> pa.Table:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


@pytest.fixture(scope="module")
def corrupt_ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corrupt")
    report = synthesize(out, 60, seed=3, corrupt_fraction=0.1)
    assert report.n_corrupt == 6
    return out


# ---------------------------------------------------------------- files


def test_find_parquet_files(tmp_path: Path) -> None:
    t = _simple_table([_jpeg()], [1])
    b = _write(tmp_path / "ds" / "b" / "x.parquet", t)
    a = _write(tmp_path / "ds" / "a.parquet", t)
    (tmp_path / "ds" / "notes.txt").write_text("not parquet")
    assert find_parquet_files(tmp_path / "ds") == [a, b]
    assert find_parquet_files(a) == [a]

    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_parquet_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        find_parquet_files(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="empty"):
        read_records(tmp_path / "empty")


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    no_label = _write(tmp_path / "nolabel.parquet", pa.table({"image": pa.array([_jpeg()], pa.binary()), "id": ["a"]}))
    with pytest.raises(ValueError, match="'label'"):
        read_records(no_label)
    no_image = _write(tmp_path / "noimage.parquet", pa.table({"id": ["a"], "label": [1]}))
    with pytest.raises(ValueError, match="'image'"):
        read_records(no_image)


# ---------------------------------------------------------------- reading synthetic data


def test_corrupt_rows_skipped_by_reason(corrupt_ds: Path) -> None:
    records, report = read_records(corrupt_ds)
    assert report.n_read == 60
    assert report.skipped == {"truncated": 2, "undecodable": 2, "zero_byte": 2}
    assert report.n_ok == len(records) == 54
    assert report.n_ok + sum(report.skipped.values()) == report.n_read
    for rec in records:
        assert decode_image(rec.image_bytes).mode == "RGB"


def test_without_validation_only_empty_images_are_skipped(corrupt_ds: Path) -> None:
    records, report = read_records(corrupt_ds, validate_images=False)
    assert report.skipped == {"zero_byte": 2}
    assert report.n_ok == len(records) == 58


def test_records_carry_normalised_metadata(corrupt_ds: Path) -> None:
    rows = {r["id"]: r for r in pq.read_table(find_parquet_files(corrupt_ds)[0]).to_pylist()}
    records, _ = read_records(corrupt_ds)
    missing = {None, "", "[]", "None"}
    for rec in records:
        raw = rows[rec.id]
        tags = raw["scene_level_tags"] or {}
        assert rec.label == raw["label"]
        assert rec.image_bytes == raw["image"]["bytes"]
        assert (rec.width, rec.height) == (raw["width"], raw["height"])
        assert rec.gps == (None if raw["gps"] in missing else raw["gps"])
        assert rec.city == (None if raw["city_name"] in missing else raw["city_name"])
        assert rec.scene_description == (None if raw["scene_description"] in missing else raw["scene_description"])
        for attr, key in [("daytime", "daytime"), ("scene", "scene_environment"),
                          ("travel_alteration", "travel_alteration"), ("weather", "weather")]:
            assert getattr(rec, attr) == (None if tags.get(key) in missing else tags[key]), attr
        assert rec.source == "real"
    assert any(r.weather is None for r in records) and any(r.weather for r in records)


def test_flattened_dotted_columns_read_like_nested(tmp_path: Path, corrupt_ds: Path) -> None:
    nested = pq.read_table(find_parquet_files(corrupt_ds)[0])
    flat = _flatten_all(nested)
    assert "image.bytes" in flat.column_names and "scene_level_tags.daytime" in flat.column_names
    assert "video_info.frame_id" in flat.column_names
    flat_path = _write(tmp_path / "flat.parquet", flat)
    assert pq.read_schema(flat_path).names == flat.column_names  # really stored flat
    got, got_report = read_records(flat_path)
    want, want_report = read_records(corrupt_ds)
    assert got == want
    assert got_report == want_report


def test_plain_binary_image_column(tmp_path: Path) -> None:
    t = pa.table({"image": pa.array([_jpeg(), b"", _jpeg((10, 20, 30))], pa.binary()),
                  "label": pa.array([1, 0, 0], pa.int64())})
    records, report = read_records(_write(tmp_path / "plain.parquet", t))
    assert [r.label for r in records] == [1, 0]
    assert report.skipped == {"zero_byte": 1}
    assert all(r.id.startswith("plain.parquet#") for r in records)
    assert records[0].width == 40 and records[0].height == 30  # taken from the image when not stored


def test_bad_labels_are_skipped(tmp_path: Path) -> None:
    imgs = [_jpeg()] * 6
    t = _simple_table(imgs, pa.array([0, 1, 2, None, -1, 1], pa.int64()))
    records, report = read_records(_write(tmp_path / "labels.parquet", t))
    assert [r.label for r in records] == [0, 1, 1]
    assert report == data_mod.ReadReport(n_read=6, n_ok=3, skipped={"bad_label": 3})

    t = _simple_table(imgs[:4], pa.array([1.0, 0.0, 0.5, None], pa.float64()))
    records, report = read_records(_write(tmp_path / "float.parquet", t))
    assert [r.label for r in records] == [1, 0]
    assert report.skipped == {"bad_label": 2}


def test_missing_metadata_values_become_none(tmp_path: Path) -> None:
    values = [None, "", "null", "None", "nan", "[]", "  ", "['Rain']"]
    n = len(values)
    tags = pa.array([{"daytime": v, "scene_environment": v, "travel_alteration": v, "weather": v} for v in values],
                    pa.struct([(k, pa.string()) for k in ("daytime", "scene_environment", "travel_alteration", "weather")]))
    t = _simple_table([_jpeg()] * n, [1] * n, gps=values, city_name=values, scene_description=values)
    t = t.append_column("scene_level_tags", tags)
    records, _ = read_records(_write(tmp_path / "meta.parquet", t))
    for rec in records[:-1]:
        assert (rec.gps, rec.city, rec.scene_description, rec.daytime, rec.scene, rec.travel_alteration,
                rec.weather) == (None,) * 7
    last = records[-1]
    assert last.weather == last.gps == last.daytime == "['Rain']"


def test_source_column_is_honoured(tmp_path: Path) -> None:
    t = _simple_table([_jpeg()] * 3, [1, 0, 1], source=["synthetic", None, "real"])
    records, _ = read_records(_write(tmp_path / "src.parquet", t))
    assert [r.source for r in records] == ["synthetic", "real", "real"]
    t = _simple_table([_jpeg()] * 2, [1, 0], is_synthetic=[True, False])
    records, _ = read_records(_write(tmp_path / "syn.parquet", t))
    assert [r.source for r in records] == ["synthetic", "real"]


def test_reads_every_file_under_a_directory(tmp_path: Path) -> None:
    _write(tmp_path / "d" / "train-0.parquet", _simple_table([_jpeg()] * 2, [1, 0]))
    _write(tmp_path / "d" / "sub" / "train-1.parquet", _simple_table([_jpeg(), b"junk"], [0, 1]))
    records, report = read_records(tmp_path / "d")
    assert report.n_read == 4 and report.n_ok == 3 and report.skipped == {"undecodable": 1}


# ---------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("1", "PNG"), ("I;16", "PNG"),
     ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("F", "TIFF"), ("I", "TIFF"), ("L", "JPEG")],
)
def test_other_modes_are_converted_to_rgb(mode: str, fmt: str) -> None:
    rgb = Image.new("RGB", (24, 16), (30, 160, 220))
    img = rgb.convert(mode) if mode not in ("I;16", "I", "F") else Image.new(mode, (24, 16), 40000 if mode != "F" else 0.5)
    data = _encode(img, fmt)
    assert Image.open(io.BytesIO(data)).mode == mode
    out = decode_image(data)
    assert out.mode == "RGB" and out.size == (24, 16)
    if mode == "I;16":  # 16-bit values are scaled, not clipped to white
        assert 150 <= out.getpixel((0, 0))[0] <= 160


def test_other_modes_pass_read_records(tmp_path: Path) -> None:
    base = Image.new("RGB", (20, 20), (250, 120, 10))
    imgs = [_encode(base.convert("L")), _encode(base.convert("RGBA")), _encode(base.convert("CMYK"), "JPEG"),
            _encode(base.convert("P")), _encode(Image.new("I;16", (20, 20), 1000))]
    records, report = read_records(_write(tmp_path / "modes.parquet", _simple_table(imgs, [1, 0, 1, 0, 1])))
    assert report.n_ok == 5 and report.skipped == {}


def test_decode_image_reasons() -> None:
    good = _jpeg(size=(120, 90))
    with pytest.raises(BadImageError) as e:
        decode_image(b"")
    assert e.value.reason == "zero_byte"
    with pytest.raises(BadImageError) as e:
        decode_image(b"\x13\x37 definitely not an image" * 20)
    assert e.value.reason == "undecodable"
    with pytest.raises(BadImageError) as e:
        decode_image(good[: int(len(good) * 0.4)])
    assert e.value.reason == "truncated"
    png = _encode(Image.new("RGB", (64, 64), (1, 2, 3)))
    with pytest.raises(BadImageError) as e:
        decode_image(png[: len(png) // 2])
    assert e.value.reason == "truncated"
    assert decode_image(good).size == (120, 90)


def test_unconvertible_image_is_unsupported_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(img: Image.Image) -> Image.Image:
        raise ValueError(f"conversion from {img.mode} not supported")

    monkeypatch.setattr(images_mod, "to_rgb", refuse)
    with pytest.raises(BadImageError) as e:
        decode_image(_jpeg())
    assert e.value.reason == "unsupported_mode"
    _, report = read_records(_write(tmp_path / "m.parquet", _simple_table([_jpeg()] * 2, [0, 1])))
    assert report.skipped == {"unsupported_mode": 2} and report.n_ok == 0


def test_a_row_over_the_pixel_limit_is_skipped_and_counted(tmp_path: Path) -> None:
    bomb = _encode(Image.new("1", (12_000, 12_000)))  # 144 megapixels, 18 KB of PNG
    photo = _jpeg(size=(4000, 3000))  # 12 megapixels: a camera frame passes
    records, report = read_records(_write(tmp_path / "big.parquet", _simple_table([bomb, photo], [1, 0])))
    assert report.skipped == {"too_large": 1} and [r.label for r in records] == [0]
    with pytest.raises(BadImageError, match=r"has 144000000 pixels, over the limit of 100000000 "
                                            r"\(data.max_image_pixels\)") as e:
        decode_image(bomb)
    assert e.value.reason == "too_large"


def test_the_pixel_limit_comes_from_the_setting_and_pillow_still_warns_elsewhere(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    monkeypatch.setenv(images_mod.MAX_IMAGE_PIXELS_ENV, "1000")  # what the command line sets from the settings
    with pytest.raises(BadImageError, match="has 1200 pixels, over the limit of 1000"):
        decode_image(_jpeg(size=(40, 30)))
    monkeypatch.delenv(images_mod.MAX_IMAGE_PIXELS_ENV)
    bomb = _encode(Image.new("1", (12_000, 12_000)))
    with pytest.raises(BadImageError):
        decode_image(bomb)
    with warnings.catch_warnings(record=True) as caught:  # decode_image silenced nothing for other callers
        warnings.simplefilter("always")
        Image.open(io.BytesIO(bomb))
    assert any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)


def test_truncated_images_stay_strict_globally() -> None:
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# ---------------------------------------------------------------- split


def _records(n_pos: int, n_neg: int, prefix: str = "r") -> list[Record]:
    recs = []
    for i in range(n_pos + n_neg):
        recs.append(Record(id=f"{prefix}{i}", image_bytes=b"x", label=int(i < n_pos), width=None, height=None,
                           gps=None, city=None, scene_description=None, daytime=None, scene=None,
                           travel_alteration=None, weather=None, source="real"))
    return recs


def test_split_is_deterministic_disjoint_and_complete() -> None:
    recs = _records(100, 100)
    train, val = split_records(recs, 0.2, seed=0)
    again = split_records(list(reversed(recs)), 0.2, seed=0)
    assert {r.id for r in again[1]} == {r.id for r in val}
    assert {r.id for r in train}.isdisjoint(r.id for r in val)
    assert len(train) + len(val) == len(recs)
    assert {r.id for r in train} | {r.id for r in val} == {r.id for r in recs}
    assert 20 <= len(val) <= 60
    assert {r.label for r in train} == {r.label for r in val} == {0, 1}
    assert [r.id for r in val] == [r.id for r in recs if r in val]  # input order kept
    other_train, other_val = split_records(recs, 0.2, seed=1)
    assert {r.id for r in other_val} != {r.id for r in val}


def test_split_is_stable_when_data_is_added() -> None:
    recs = _records(100, 100)
    _, val = split_records(recs, 0.2, seed=0)
    _, bigger_val = split_records(recs + _records(50, 50, prefix="new"), 0.2, seed=0)
    assert {r.id for r in val} <= {r.id for r in bigger_val}


def test_split_keeps_both_labels_in_each_split_when_possible() -> None:
    for seed in range(20):
        recs = _records(2, 3)
        train, val = split_records(recs, 0.2, seed=seed)
        assert {r.label for r in train} == {0, 1}, seed
        assert {r.label for r in val} == {0, 1}, seed
    train, val = split_records(_records(1, 5), 0.5, seed=0)  # a single positive can only be on one side
    assert len(train) + len(val) == 6
    assert split_records([], 0.2) == ([], [])
    with pytest.raises(ValueError):
        split_records(_records(2, 2), 1.0)


# ---------------------------------------------------------------- torch dataset


def test_image_dataset_shapes_and_range(corrupt_ds: Path) -> None:
    records, _ = read_records(corrupt_ds)
    ds = ImageDataset(records[:8], 64)
    assert len(ds) == 8
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 64, 64) and x.dtype == torch.float32
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.3
        assert y.dtype == torch.int64 and y.shape == () and int(y) == records[i].label


def test_image_dataset_centre_crops_the_shorter_side() -> None:
    img = Image.new("RGB", (160, 80), (255, 0, 0))  # red left and right bands ...
    img.paste(Image.new("RGB", (80, 80), (0, 255, 0)), (40, 0))  # ... around a green centre square
    rec = dataclasses.replace(_records(1, 0)[0], image_bytes=_encode(img))
    x, y = ImageDataset([rec], 32)[0]
    assert x.shape == (3, 32, 32) and int(y) == 1
    assert float(x[1].min()) > 0.95 and float(x[0].max()) < 0.05  # only green survives
    tall = Image.new("RGB", (40, 120), (0, 0, 255))
    x, _ = ImageDataset([dataclasses.replace(rec, image_bytes=_encode(tall, "JPEG"))], 16)[0]
    assert x.shape == (3, 16, 16) and np.isclose(float(x[2].mean()), 1.0, atol=0.05)
