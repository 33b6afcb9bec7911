"""SAM 3 pseudo-labels with a tiny random-weight SAM 3: segmentation, the mask writer and its resume, the job."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.utils import is_torchvision_available

from roadwork.platform import pseudolabel
from roadwork.trainer.data.records import read_records
from roadwork.platform.pseudolabel import ROADWORK_PROMPTS, pseudo_label, segment, tiny_sam3
from roadwork.trainer.data.synth import synthesize

PROMPTS = ["traffic cone", "road work sign"]
KEEP_ALL = -1.0  # score threshold below every score: every instance is kept


@pytest.fixture(scope="module")
def sam3():  # noqa: ANN201  (model, processor)
    return tiny_sam3(seed=0)


@pytest.fixture
def image() -> Image.Image:
    """Non-square on purpose, so that a transposed (H, W) shows."""
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))


def _png_bytes(seed: int, width: int = 40, height: int = 30) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------
# model and segment
# --------------------------------------------------------------------------


def test_tiny_sam3_forward_has_no_nan(sam3, image: Image.Image) -> None:
    model, processor = sam3
    inputs = processor(images=[image.resize((64, 64))] * 2, text=PROMPTS, return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    n_queries = model.config.detr_decoder_config.num_queries
    assert out.pred_logits.shape == (2, n_queries)
    assert out.pred_masks.shape[:2] == (2, n_queries)
    for t in (out.pred_masks, out.pred_logits, out.pred_boxes, out.presence_logits):
        assert torch.isfinite(t).all()


def test_segment_is_binary_mask_of_image_size(sam3, image: Image.Image) -> None:
    mask = segment(*sam3, image, PROMPTS, score_threshold=KEEP_ALL)
    assert mask.shape == (48, 64) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1}
    assert 0 < mask.sum() < mask.size  # the tiny model's masks are neither empty nor full: thresholds matter


def test_segment_threshold_above_one_is_empty(sam3, image: Image.Image) -> None:
    mask = segment(*sam3, image, PROMPTS, score_threshold=1.01)
    assert mask.shape == (48, 64) and not mask.any()


def test_segment_keeping_everything_is_union_of_instance_masks(sam3, image: Image.Image) -> None:
    model, processor = sam3
    inputs = processor(images=[image] * len(PROMPTS), text=PROMPTS, return_tensors="pt")  # vision run per prompt
    with torch.no_grad():
        out = model(**inputs)
    results = processor.post_process_instance_segmentation(out, threshold=KEEP_ALL, mask_threshold=0.5,
                                                           target_sizes=[(48, 64)] * len(PROMPTS))
    instances = torch.cat([r["masks"] for r in results])  # (prompts x queries, H, W)
    assert len(instances) == len(PROMPTS) * model.config.detr_decoder_config.num_queries
    expected = instances.any(dim=0).numpy().astype(np.uint8)
    np.testing.assert_array_equal(segment(model, processor, image, PROMPTS, score_threshold=KEEP_ALL), expected)


def test_segment_batched_prompts_equal_prompt_by_prompt(sam3, image: Image.Image) -> None:
    one_by_one = [segment(*sam3, image, [p], score_threshold=0.3) for p in PROMPTS]
    assert all(m.any() for m in one_by_one)  # not trivially equal
    np.testing.assert_array_equal(segment(*sam3, image, PROMPTS, score_threshold=0.3), np.maximum(*one_by_one))


def test_load_sam3_from_local_folder(sam3, image: Image.Image, tmp_path: Path) -> None:
    """The real loading path, offline: a saved tiny SAM 3 stands in for facebook/sam3."""
    model, processor = sam3
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    config = tmp_path / "processor_config.json"  # what a real checkpoint names
    config.write_text(config.read_text().replace("PilSam3ImageProcessor", "Sam3ImageProcessor"))
    loaded, loaded_processor = pseudolabel.load_sam3(str(tmp_path))
    assert not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    mask = segment(loaded, loaded_processor, image, PROMPTS, score_threshold=KEEP_ALL)
    assert mask.shape == (48, 64)
    if not is_torchvision_available():  # same Pillow preprocessing: the very same mask
        np.testing.assert_array_equal(mask, segment(*sam3, image, PROMPTS, score_threshold=KEEP_ALL))


# --------------------------------------------------------------------------
# pseudo_label
# --------------------------------------------------------------------------


def _check_masks(out: Path, images: dict[str, Image.Image]) -> dict:
    index = json.loads((out / "index.json").read_text())
    assert set(index["masks"]) == set(images)
    for rid, entry in index["masks"].items():
        assert 0.0 <= entry["fraction"] <= 1.0
        assert entry["prompts"] == list(ROADWORK_PROMPTS) and entry["model"] == "Sam3Model"
        png = Image.open(out / entry["mask"])
        assert png.mode == "L" and png.size == images[rid].size
        arr = np.asarray(png)
        assert set(np.unique(arr)) <= {0, 255}
        assert entry["fraction"] == pytest.approx((arr > 0).mean())
    return index


def test_pseudo_label_parquet_dataset_and_resume(sam3, tmp_path: Path) -> None:
    synthesize(tmp_path / "ds", 8, seed=0, corrupt_fraction=0.25)
    good, _ = read_records(tmp_path / "ds", validate_images=True)
    images = {r.id: Image.open(io.BytesIO(r.image_bytes)) for r in good}
    assert len(images) == 6
    out = tmp_path / "labels"
    done: list[int] = []

    report = pseudo_label(tmp_path / "ds", out, model=sam3[0], processor=sam3[1], progress=done.append,
                          score_threshold=KEEP_ALL)
    assert (report.n_images, report.n_failed, report.n_written) == (8, 2, 6)
    assert report.n_with_mask == 6 and report.index_path == out / "index.json"
    index = _check_masks(out, images)
    assert index["skipped_rows"] + len(index["failed"]) == 2  # zero-byte rows never reach the labeller
    assert done == list(range(1, 8 - index["skipped_rows"] + 1))
    assert not list((out / "masks").glob(".*"))  # no temp file left behind

    before = _mtimes(out)
    again = pseudo_label(tmp_path / "ds", out, model=sam3[0], processor=sam3[1], score_threshold=KEEP_ALL)
    assert again.n_written == 0 and (again.n_images, again.n_with_mask, again.n_failed) == (8, 6, 2)
    assert _mtimes(out) == before  # not one file rewritten, index.json included


def test_pseudo_label_redoes_missing_masks_and_other_prompts(sam3, tmp_path: Path) -> None:
    synthesize(tmp_path / "ds", 3, seed=2)
    records, _ = read_records(tmp_path / "ds")
    out = tmp_path / "labels"
    first = pseudo_label(records, out, model=sam3[0], processor=sam3[1])
    assert (first.n_images, first.n_written, first.n_failed) == (3, 3, 0)
    next((out / "masks").glob("*.png")).unlink()
    assert pseudo_label(records, out, model=sam3[0], processor=sam3[1]).n_written == 1
    other = pseudo_label(records, out, model=sam3[0], processor=sam3[1], prompts=["traffic cone"])
    assert other.n_written == 3
    entries = json.loads((out / "index.json").read_text())["masks"].values()
    assert all(e["prompts"] == ["traffic cone"] for e in entries)


def test_pseudo_label_image_folder(sam3, tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    (pool / "sub").mkdir(parents=True)
    (pool / "a.png").write_bytes(_png_bytes(1))
    (pool / "sub" / "b.jpg").write_bytes(_png_bytes(2, 50, 20))  # content decides, not the extension
    (pool / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (pool / "notes.txt").write_text("not an image, not counted")
    out = tmp_path / "labels"

    report = pseudo_label(pool, out, model=sam3[0], processor=sam3[1], score_threshold=KEEP_ALL)
    assert (report.n_images, report.n_failed, report.n_written, report.n_with_mask) == (3, 1, 2, 2)
    index = _check_masks(out, {"a.png": Image.open(pool / "a.png"), "sub/b.jpg": Image.open(pool / "sub" / "b.jpg")})
    assert set(index["failed"]) == {"broken.jpg"}

    before = _mtimes(out)
    again = pseudo_label(pool, out, model=sam3[0], processor=sam3[1], score_threshold=KEEP_ALL)
    assert (again.n_images, again.n_failed, again.n_written) == (3, 1, 0)
    assert _mtimes(out) == before


def test_pseudo_label_missing_pool_is_a_clear_error(sam3, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        pseudo_label(tmp_path / "nowhere", tmp_path / "out", model=sam3[0], processor=sam3[1])


def test_pseudo_label_job_uses_settings(home: Path, sam3, monkeypatch: pytest.MonkeyPatch) -> None:
    synthesize(home / "datasets" / "synth", 4, seed=3, corrupt_fraction=0.25)
    loaded: list[str] = []
    monkeypatch.setattr(pseudolabel, "load_sam3", lambda model_id, device: loaded.append(model_id) or sam3)

    summary = pseudolabel.pseudo_label_job(model_id="local/sam3")
    assert loaded == ["local/sam3"]
    assert json.loads(json.dumps(summary)) == summary
    assert summary["out_dir"] == str(home.resolve() / "pseudolabels" / "synth")
    assert summary["n_images"] == 4 and summary["n_failed"] == 1
    index = json.loads(Path(summary["index_path"]).read_text())
    assert {e["model"] for e in index["masks"].values()} == {"local/sam3"}
