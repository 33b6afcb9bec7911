"""The exported model repository loads through the stock transformers path and agrees with our predictor."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image
from transformers import pipeline

from roadwork.trainer.checkpoint import META, read_meta
from roadwork.trainer.data import BadImageError, ImageDataset, Record
from roadwork.trainer.export import export_model
from roadwork.trainer.calibration import Calibration
from roadwork.trainer.predict import Predictor, to_pixels

CARD = {"model_name": "m", "description": "d", "version": "1.2.3", "submitted_by": "5H", "submission_time": 1}


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(224, 224), (320, 240), (97, 131)]
    return [Image.fromarray(rng.integers(0, 256, (sizes[i % 3][1], sizes[i % 3][0], 3), dtype=np.uint8))
            for i in range(n)]


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):  # noqa: ANN001, ANN201
    return export_model(tiny_checkpoint.checkpoint_dir, tmp_path_factory.mktemp("export") / "model",
                        model_card=CARD, version="1.2.3")


def test_layout_and_label_map(exported) -> None:  # noqa: ANN001
    config = json.loads((exported / "config.json").read_text())
    assert config["id2label"] == {"0": "None", "1": "Roadwork"}
    assert json.loads((exported / "model_card.json").read_text()) == CARD
    for name in ("model.safetensors", "preprocessor_config.json", "modeling_roadwork.py", META,
                 "streetvision_detector.py"):
        assert (exported / name).exists(), name


def test_pipeline_scores_equal_our_predictions(exported) -> None:  # noqa: ANN001
    classify = pipeline("image-classification", model=str(exported), trust_remote_code=True)
    images = _images(6)
    ours = Predictor.load(exported).predict(images)
    for image, expected in zip(images, ours, strict=True):
        scores = {r["label"]: r["score"] for r in classify(image)}
        assert set(scores) == {"Roadwork", "None"}
        assert scores["Roadwork"] == pytest.approx(expected, abs=1e-5)
        assert scores["Roadwork"] + scores["None"] == pytest.approx(1.0, abs=1e-6)


def test_calibration_is_applied_in_the_exported_model(tiny_checkpoint, tmp_path) -> None:  # noqa: ANN001
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for f in tiny_checkpoint.checkpoint_dir.iterdir():
        (ckpt / f.name).write_bytes(f.read_bytes())
    meta = read_meta(ckpt) | {"calibration": {"kind": "piecewise_linear", "threshold": 0.3}}
    (ckpt / META).write_text(json.dumps(meta))
    out = export_model(ckpt, tmp_path / "model", model_card=CARD)
    images = _images(4, seed=3)
    raw = Predictor.load(tiny_checkpoint.checkpoint_dir).predict(images)  # uncalibrated checkpoint
    calibrated = Predictor.load(out).predict(images)
    np.testing.assert_allclose(calibrated, Calibration(0.3).apply(raw), atol=1e-9)
    classify = pipeline("image-classification", model=str(out), trust_remote_code=True)
    got = [next(r["score"] for r in classify(im) if r["label"] == "Roadwork") for im in images]
    np.testing.assert_allclose(got, calibrated, atol=1e-5)


def test_processor_matches_the_training_preprocessing() -> None:
    images = _images(3, seed=5)
    records = []
    for i, image in enumerate(images):
        import io

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        records.append(Record(id=str(i), image_bytes=buf.getvalue(), label=0, width=None, height=None, gps=None,
                              city=None, scene_description=None, daytime=None, scene=None,
                              travel_alteration=None, weather=None, source="real"))
    dataset = ImageDataset(records, 64)
    pixels = to_pixels(images, 64)
    for i in range(3):
        np.testing.assert_array_equal(dataset[i][0].numpy(), pixels[i].numpy())


def test_base_miner_detector_loads_the_export(exported, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("ROADWORK_MODEL_DIR", str(exported))
    monkeypatch.syspath_prepend(str(exported))
    sys.modules.pop("streetvision_detector", None)
    from streetvision_detector import RoadworkOpsDetector

    detector = RoadworkOpsDetector()
    image = _images(1, seed=9)[0]
    assert detector(image) == pytest.approx(float(Predictor.load(exported).predict([image])[0]), abs=1e-5)


def test_predict_bytes_rejects_bad_input_cleanly(exported) -> None:  # noqa: ANN001
    predictor = Predictor.load(exported)
    with pytest.raises(BadImageError):
        predictor.predict_bytes(b"")
    with pytest.raises(BadImageError):
        predictor.predict_bytes(b"not an image at all")
    with pytest.raises(BadImageError):
        predictor.predict_bytes(b"%%%", is_base64=True)
