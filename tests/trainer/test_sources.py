"""`read_records` over its three sources: parquet, an image folder with metadata.jsonl, and `datasets`."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from PIL import Image

from roadwork.trainer.data.records import ReadReport, Record, read_records
from roadwork.trainer.data.readers import (
    DATASET,
    IMAGEFOLDER,
    PARQUET,
    DatasetRef,
    resolve_source,
)
from roadwork.trainer.data.synth import OUTPUT_RELPATH, synthesize

ROOT = Path(__file__).resolve().parents[2]
N_ROWS = 30

# A dataset card like the Hub's: one default config whose train split is the parquet shards under data/.
README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
# tiny synthetic roadwork
"""

META_KEYS = ("id", "label", "width", "height", "gps", "city_name", "scene_description", "video_info")


def _jpeg(color: tuple[int, int, int] = (200, 120, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), color).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _write_image_folder(dst: Path, rows: list[dict[str, Any]], flat_tags: bool = False) -> Path:
    """Write ``rows`` (synth parquet rows) as images + metadata.jsonl; tags nested or as dotted keys."""
    (dst / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for row in rows:
        name = f"images/{row['id']}.jpg"
        (dst / name).write_bytes(row["image"]["bytes"])
        meta = {"file_name": name, **{k: row[k] for k in META_KEYS}}
        tags = row["scene_level_tags"]
        if flat_tags:
            meta.update({f"scene_level_tags.{k}": v for k, v in (tags or {}).items()})
        else:
            meta["scene_level_tags"] = tags
        lines.append(json.dumps(meta))
    (dst / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return dst


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local dataset repository laid out like the Hub's: data/train-00000-of-00001.parquet + README.md."""
    out = tmp_path_factory.mktemp("repo")
    report = synthesize(out, N_ROWS, seed=7, corrupt_fraction=0.1)
    assert report.n_corrupt == 3  # one zero-byte, one truncated, one garbage image
    (out / "README.md").write_text(README)
    return out


@pytest.fixture(scope="module")
def raw_rows(repo: Path) -> list[dict[str, Any]]:
    return pq.read_table(repo / OUTPUT_RELPATH).to_pylist()


@pytest.fixture(scope="module")
def parquet_read(repo: Path) -> tuple[list[Record], ReadReport]:
    return read_records(repo)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory, raw_rows: list[dict[str, Any]]) -> Path:
    return _write_image_folder(tmp_path_factory.mktemp("folder"), raw_rows)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Offline mode on, and every socket connection refused and recorded: the list must stay empty."""
    attempts: list[tuple] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        attempts.append(args)
        raise OSError("network access attempted in an offline test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_parquet_read_is_the_reference(parquet_read: tuple[list[Record], ReadReport]) -> None:
    records, report = parquet_read
    assert report.n_read == N_ROWS and report.n_ok == len(records) == N_ROWS - 3
    assert report.skipped == {"truncated": 1, "undecodable": 1, "zero_byte": 1}
    assert {r.label for r in records} == {0, 1}


# ---------------------------------------------------------------- image folder


@pytest.mark.parametrize("flat_tags", [False, True], ids=["nested-tags", "dotted-tags"])
def test_image_folder_reads_like_the_parquet(
    tmp_path: Path, raw_rows: list[dict[str, Any]], parquet_read: tuple[list[Record], ReadReport], flat_tags: bool
) -> None:
    folder = _write_image_folder(tmp_path / "folder", raw_rows, flat_tags=flat_tags)
    records, report = read_records(folder)
    want_records, want_report = parquet_read
    assert [r.id for r in records] == [r.id for r in want_records]
    assert records == want_records  # labels, image bytes, every metadata field
    assert report == want_report  # the corrupt images are skipped under the same reasons
    assert any(r.daytime for r in records) and any(r.weather for r in records)


def test_image_folder_accepts_str_and_path(image_folder: Path) -> None:
    assert read_records(str(image_folder)) == read_records(image_folder)


def test_image_folder_bad_rows_are_counted_by_reason(tmp_path: Path, raw_rows: list[dict[str, Any]]) -> None:
    clean = [r for r in raw_rows if len(r["image"]["bytes"]) > 10_000][:4]
    folder = _write_image_folder(tmp_path / "folder", clean)
    outside = tmp_path / "outside.jpg"  # a good image, so reading it would show up as an extra record
    outside.write_bytes(_jpeg((10, 200, 90)))
    (folder / "images" / "link.jpg").symlink_to(outside)
    (folder / "images" / "empty.jpg").write_bytes(b"")
    (folder / "images" / "cut.jpg").write_bytes(clean[0]["image"]["bytes"][:3000])
    (folder / "images" / "noid.jpg").write_bytes(_jpeg())
    good = "images/noid.jpg"
    bad_lines = [
        b"{not json",
        b"[1, 2]",
        b'{"file_name": "\xff\xfe"}',  # not UTF-8
        json.dumps({"file_name": "images/nope.jpg", "label": 1}).encode(),
        json.dumps({"file_name": "images/empty.jpg", "label": 0}).encode(),
        json.dumps({"file_name": good, "label": 2}).encode(),
        json.dumps({"file_name": good, "label": None}).encode(),
        json.dumps({"file_name": "../outside.jpg", "label": 1}).encode(),
        json.dumps({"file_name": "images/../../outside.jpg", "label": 1}).encode(),
        json.dumps({"file_name": str(outside), "label": 1}).encode(),
        json.dumps({"file_name": "images/link.jpg", "label": 1}).encode(),
        json.dumps({"label": 1}).encode(),
        json.dumps({"file_name": "images/cut.jpg", "label": 1}).encode(),
        b"",  # a blank line is not a row
        json.dumps({"file_name": good, "label": 1, "city_name": "Boston"}).encode(),
    ]
    with (folder / "metadata.jsonl").open("ab") as fh:
        fh.write(b"\n".join(bad_lines) + b"\n")

    records, report = read_records(folder)
    assert report.skipped == {"bad_json": 3, "missing_file": 1, "zero_byte": 1, "bad_label": 2,
                              "unsafe_path": 4, "missing_image": 1, "truncated": 1}
    assert report.n_read == len(clean) + len(bad_lines) - 1
    assert report.n_ok + sum(report.skipped.values()) == report.n_read
    assert [r.id for r in records] == [r["id"] for r in clean] + [good]  # no id: the file_name
    assert records[-1].city == "Boston" and records[-1].label == 1
    assert all(r.image_bytes != outside.read_bytes() for r in records)


def test_folder_with_both_layouts_asks_the_user_to_choose(
    tmp_path: Path, repo: Path, raw_rows: list[dict[str, Any]], parquet_read: tuple[list[Record], ReadReport]
) -> None:
    both = _write_image_folder(tmp_path / "both", raw_rows[:5])
    shutil.copy(repo / OUTPUT_RELPATH, both / "train.parquet")
    with pytest.raises(ValueError, match=r"metadata\.jsonl.*train\.parquet") as e:
        read_records(both)
    assert f"imagefolder:{both}" in str(e.value) and f"parquet:{both}" in str(e.value)
    assert read_records(f"parquet:{both}") == parquet_read
    first5 = {r["id"] for r in raw_rows[:5]}
    records, report = read_records(f"imagefolder:{both}")
    assert records == [r for r in parquet_read[0] if r.id in first5]
    assert report.n_read == 5


def test_missing_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_records(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_records(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.parquet files and no metadata\.jsonl"):
        read_records(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="metadata.jsonl"):
        read_records(f"imagefolder:{tmp_path / 'empty'}")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_records(f"dataset:{tmp_path / 'nowhere'}")


# ---------------------------------------------------------------- source syntax


@pytest.mark.parametrize(
    ("source", "want"),
    [
        ("dataset:natix-network-org/roadwork", ("natix-network-org/roadwork", "train", None)),
        ("natix-network-org/roadwork", ("natix-network-org/roadwork", "train", None)),
        ("dataset:natix-network-org/roadwork:validation", ("natix-network-org/roadwork", "validation", None)),
        ("dataset:natix-network-org/roadwork@refs/convert/parquet:train[:10%]",
         ("natix-network-org/roadwork", "train[:10%]", "refs/convert/parquet")),
        (Path("natix-network-org/roadwork@v1.2"), ("natix-network-org/roadwork", "train", "v1.2")),
    ],
)
def test_dataset_reference_syntax(source: str | Path, want: tuple[str, str, str | None]) -> None:
    kind, ref = resolve_source(source)
    assert kind == DATASET and isinstance(ref, DatasetRef)
    assert (ref.path, ref.split, ref.revision) == want


def test_local_paths_win_over_hub_ids(repo: Path, image_folder: Path) -> None:
    assert resolve_source(repo) == (PARQUET, repo)
    assert resolve_source(image_folder) == (IMAGEFOLDER, image_folder)
    kind, ref = resolve_source(f"dataset:{repo}:train[:50%]")
    assert kind == DATASET and (ref.path, ref.split, ref.revision) == (str(repo), "train[:50%]", None)
    with pytest.raises(ValueError, match="empty split"):
        resolve_source("dataset:natix-network-org/roadwork:")


# ---------------------------------------------------------------- datasets.load_dataset


def test_local_dataset_repo_reads_like_the_parquet(
    repo: Path, tmp_path: Path, parquet_read: tuple[list[Record], ReadReport], no_network: list[tuple]
) -> None:
    records, report = read_records(f"dataset:{repo}", cache_dir=tmp_path / "cache")
    want_records, want_report = parquet_read
    assert [(r.id, r.label) for r in records] == [(r.id, r.label) for r in want_records]
    assert [r.image_bytes for r in records] == [r.image_bytes for r in want_records]
    assert records == want_records and report == want_report
    # a Path wrapper (as the trainer's CLI makes) and an explicit split read the same
    assert read_records(Path(f"dataset:{repo}:train"), cache_dir=tmp_path / "cache") == (records, report)
    _, sliced = read_records(f"dataset:{repo}:train[:10]", cache_dir=tmp_path / "cache")
    assert sliced.n_read == 10
    assert no_network == []


def test_image_folder_through_datasets_reads_its_files(
    image_folder: Path, tmp_path: Path, no_network: list[tuple]
) -> None:
    """datasets keeps image-folder images as paths, not bytes: those files are read."""
    records, report = read_records(f"dataset:{image_folder}", cache_dir=tmp_path / "cache")
    want_records, want_report = read_records(image_folder)
    assert [(r.id, r.label, r.image_bytes) for r in records] == [(r.id, r.label, r.image_bytes) for r in want_records]
    assert report == want_report
    assert no_network == []


def test_unknown_split_names_the_source(repo: Path, tmp_path: Path, no_network: list[tuple]) -> None:
    with pytest.raises(ValueError, match=r"dataset:.*validation.*Unknown split"):
        read_records(f"dataset:{repo}:validation", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("source", ["dataset:nobody-here/no-such-roadwork-set", "nobody-here/no-such-roadwork-set@v2"])
def test_unknown_dataset_id_offline_is_a_clear_error(source: str, tmp_path: Path, no_network: list[tuple]) -> None:
    with pytest.raises(FileNotFoundError) as e:
        read_records(source, cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert source in msg and "offline" in msg
    assert "\n" not in msg and e.value.__suppress_context__  # one line, no chain of datasets internals
    if not source.startswith("dataset:"):
        assert "no local path" in msg  # a mistyped local path is not blamed on the Hub alone
    assert no_network == []


def test_fresh_offline_process_without_network(repo: Path, tmp_path: Path) -> None:
    """A new interpreter with only the offline variables set (nothing imported earlier can have pre-read them)
    and sockets refused reads the local repo, fails cleanly on an unknown id, and does not import `datasets`
    for a parquet read."""
    script = textwrap.dedent(
        """
        import json, socket, sys
        def refuse(*a, **k):
            raise SystemExit("network access attempted: %r" % (a,))
        socket.socket.connect = socket.create_connection = socket.getaddrinfo = refuse
        from roadwork.trainer.data.records import read_records
        out = {}
        _, report = read_records(sys.argv[1])
        out["parquet_imports_datasets"] = "datasets" in sys.modules
        _, report = read_records("dataset:" + sys.argv[1], cache_dir=sys.argv[2])
        out["dataset_report"] = [report.n_read, report.n_ok, report.skipped]
        try:
            read_records("dataset:nobody-here/no-such-roadwork-set", cache_dir=sys.argv[2])
        except FileNotFoundError as e:
            out["error"] = str(e)
        print(json.dumps(out))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    proc = subprocess.run([sys.executable, "-c", script, str(repo), str(tmp_path / "cache")],
                          check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["parquet_imports_datasets"] is False
    assert out["dataset_report"] == [N_ROWS, N_ROWS - 3, {"truncated": 1, "undecodable": 1, "zero_byte": 1}]
    assert "nobody-here/no-such-roadwork-set" in out["error"]


def test_canonical_source_makes_local_paths_absolute_and_keeps_dataset_references(tmp_path, monkeypatch) -> None:
    from roadwork.trainer.data.readers import canonical_source

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.parquet").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert canonical_source("d") == str((tmp_path / "d").resolve())
    assert canonical_source("parquet:d") == "parquet:" + str((tmp_path / "d").resolve())
    assert canonical_source("dataset:natix-network-org/roadwork:train") == "dataset:natix-network-org/roadwork:train"
    assert canonical_source(Path("dataset:owner/name")) == "dataset:owner/name"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        canonical_source("missing/dir/x")


def test_a_run_config_records_a_hub_dataset_as_written(settings, tmp_path) -> None:
    from roadwork.platform.evaluation.validation import resolve_data_path

    assert str(resolve_data_path(settings, "dataset:natix-network-org/roadwork")) == "dataset:natix-network-org/roadwork"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_data_path(settings, str(tmp_path / "nope"))
