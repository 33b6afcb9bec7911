"""The student as the stock miner serves it: the calibrated cut baked into its head, the stock pipeline's number,
and the distillation loop (KL to the teacher's calibrated probabilities plus the hard label)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from roadwork.trainer.eval.metrics import binary_metrics, threshold_sweep
from roadwork.trainer.eval.predict import Predictor, StudentPredictor
from roadwork.trainer.model.backbones import TinySizes
from roadwork.trainer.student.distill import (
    DistillConfig,
    DistillSet,
    distill_loss,
    distill_student,
)
from roadwork.trainer.student.model import (
    build_student,
    pixel_values,
    roadwork_probability,
    save_student,
    shift_threshold,
)

SIZE = 32


def images(n: int, seed: int = 0, size: tuple[int, int] = (48, 40)) -> list[Image.Image]:
    """Random RGB images (not the student's input size, so the processor's resize is exercised)."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def tiny_student(kind: str = "dinov2", seed: int = 0):
    torch.manual_seed(seed)
    model, processor = build_student(kind, tiny=TinySizes(image_size=SIZE, patch_size=8), image_size=SIZE)
    model.eval()
    with torch.no_grad():  # raw scores spread around 0.5, so that many fall on either side of a cut
        model.classifier.weight.mul_(4.0)
        logits = model(pixel_values=pixel_values(processor, images(64, seed=99))).logits
        model.classifier.bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    return model, processor


@torch.no_grad()
def scores(model, processor, imgs) -> np.ndarray:
    return roadwork_probability(model(pixel_values=pixel_values(processor, imgs)).logits).double().numpy()


@pytest.mark.parametrize("kind", ["dinov2", "vit"])
def test_the_shifted_score_crosses_half_exactly_where_the_raw_score_crosses_the_cut(kind: str) -> None:
    model, processor = tiny_student(kind)
    imgs = images(300, seed=1)
    raw = scores(model, processor, imgs)
    ordered = np.sort(raw)
    assert ordered[-1] - ordered[0] > 0.2, "the raw scores should spread around the cut"
    # Cuts between two neighbouring raw scores in the middle (the nearest inputs lie a hair on either side) and
    # cuts far from the middle.
    middle = len(ordered) // 2
    cuts = [(ordered[i] + ordered[i + 1]) / 2 for i in (middle - 1, middle, middle + 1, 20, len(ordered) - 20)]
    for t in cuts:
        shifted = copy.deepcopy(model)
        shift_threshold(shifted, t)
        after = scores(shifted, processor, imgs)
        assert ((after > 0.5) == (raw > t)).all(), f"cut {t}: {np.sum((after > 0.5) != (raw > t))} disagree"
        # the calibrated probability equals the raw one moved monotonically: order is kept
        assert (np.argsort(after, kind="stable") == np.argsort(raw, kind="stable")).mean() > 0.99
    near = min(abs(r - t) for r in raw for t in cuts[:3])
    assert near < 1e-3  # the test does look at inputs right next to the cut


def test_a_shift_outside_zero_one_is_refused() -> None:
    model, _ = tiny_student()
    for t in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="threshold"):
            shift_threshold(model, t)


@pytest.mark.parametrize("kind", ["dinov2", "vit"])
def test_a_student_folder_predicts_what_the_stock_pipeline_answers(kind: str, tmp_path) -> None:
    from transformers import (
        AutoImageProcessor,
        AutoModelForImageClassification,
        pipeline,
    )

    model, processor = tiny_student(kind)
    shift_threshold(model, 0.37)
    save_student(model, processor, tmp_path / "student", {"threshold": 0.37})
    imgs = images(6, seed=2) + images(3, seed=3, size=(224, 224)) + images(2, seed=4, size=(300, 180))
    ours = Predictor.load(tmp_path / "student")
    assert isinstance(ours, StudentPredictor) and ours.calibration.threshold == 0.5  # nothing on top
    mine = ours.predict(imgs)
    stock = pipeline("image-classification", model=AutoModelForImageClassification.from_pretrained(tmp_path / "student"),
                     feature_extractor=AutoImageProcessor.from_pretrained(tmp_path / "student"))
    theirs = np.array([{d["label"]: d["score"] for d in stock(img)}["Roadwork"] for img in imgs])
    np.testing.assert_allclose(mine, theirs, atol=1e-4)
    assert np.ptp(theirs) > 1e-3  # different images, different answers: the comparison means something


def test_a_plain_stock_folder_without_roadwork_json_loads_too(tmp_path) -> None:
    model, processor = tiny_student()
    save_student(model, processor, tmp_path / "s", {})
    (tmp_path / "s" / "roadwork.json").unlink()
    imgs = images(4)
    np.testing.assert_allclose(Predictor.load(tmp_path / "s").predict(imgs), scores(model, processor, imgs),
                               atol=1e-6)


def test_the_kl_term_vanishes_when_the_student_answers_the_teachers_probability() -> None:
    p = torch.tensor([0.1, 0.45, 0.8, 0.99])
    labels = torch.tensor([0, 1, 1, 1])
    matching = torch.stack([torch.zeros(4), torch.log(p) - torch.log1p(-p)], dim=1)
    for temperature in (1.0, 2.0):
        _, kl, _ = distill_loss(matching, p, labels, alpha=0.5, temperature=temperature)
        assert kl.item() == pytest.approx(0.0, abs=1e-6)
        _, kl_off, _ = distill_loss(matching + torch.tensor([0.0, 1.0]), p, labels, 0.5, temperature)
        assert kl_off.item() > 1e-3
    total, kl, ce = distill_loss(matching, p, labels, alpha=0.25, temperature=1.0)
    assert total.item() == pytest.approx(0.25 * kl.item() + 0.75 * ce.item())


def _toy_sets() -> tuple[DistillSet, DistillSet]:
    """Bright images are roadwork; the teacher is confident but not certain."""
    rng = np.random.default_rng(5)

    def make(n: int) -> tuple[list[Image.Image], np.ndarray]:
        labels = rng.integers(0, 2, n)
        imgs = [Image.fromarray(np.clip(rng.normal(170 if y else 80, 30, (40, 40, 3)), 0, 255).astype(np.uint8))
                for y in labels]
        return imgs, labels

    train_imgs, train_labels = make(48)
    val_imgs, val_labels = make(24)
    soft = np.where(train_labels == 1, 0.85, 0.2)
    return DistillSet(train_imgs, train_labels, soft), DistillSet(val_imgs, val_labels)


def test_distillation_is_deterministic_and_bakes_its_cut_into_the_head() -> None:
    train, val = _toy_sets()
    config = DistillConfig(epochs=2, batch_size=16, lr=2e-3, image_size=SIZE, seed=3)
    results = []
    for _ in range(2):
        model, processor = tiny_student(seed=config.seed)
        results.append(distill_student(model, processor, train, val, config, show_progress=False, log=lambda _: None))
    a, b = results
    assert a.threshold == b.threshold
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert [h["epoch"] for h in a.history] == [1, 2] and all(np.isfinite(h["loss"]) for h in a.history)
    # The head is shifted: the stock 0.5 cut on the student gives the MCC of the fitted cut on the raw scores,
    # the best cut of the raw scores on the validation images.
    after = scores(a.model, a.processor, val.images)
    unshifted = copy.deepcopy(a.model)
    shift_threshold(unshifted, 1 - a.threshold)  # adds logit(t) back
    raw = scores(unshifted, a.processor, val.images)
    assert a.metrics["val_mcc"] == binary_metrics(val.labels, after)["mcc"]
    assert a.metrics["val_mcc"] == binary_metrics(val.labels, raw, cut=a.threshold)["mcc"]
    assert a.metrics["val_mcc"] == pytest.approx(threshold_sweep(val.labels, raw).best_mcc)
    assert a.metrics["val_mcc"] >= a.metrics["val_mcc_before_shift"]


def test_a_training_image_without_a_teacher_probability_is_refused() -> None:
    train, val = _toy_sets()
    model, processor = tiny_student()
    with pytest.raises(ValueError, match="teacher"):
        distill_student(model, processor, DistillSet(train.images, train.labels), val, DistillConfig(image_size=SIZE),
                        show_progress=False)


def test_a_student_starts_from_a_pretrained_backbone_with_a_new_two_label_head(tmp_path) -> None:
    import torch
    import transformers

    from roadwork.trainer.model.backbones import TinySizes, spec_for_kind
    from roadwork.trainer.student.model import ID2LABEL, build_student

    torch.manual_seed(3)
    backbone = transformers.Dinov2Model(spec_for_kind("dinov2").tiny_config(TinySizes()))
    backbone.save_pretrained(tmp_path / "pretrained")  # as a Hub checkpoint of the backbone alone would be

    model, _ = build_student("dinov2", pretrained=str(tmp_path / "pretrained"))
    saved = backbone.state_dict()
    loaded = model.dinov2.state_dict()
    assert set(saved) == set(loaded)
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)  # every backbone weight comes from the checkpoint
    assert model.config.id2label == ID2LABEL and model.classifier.out_features == 2
