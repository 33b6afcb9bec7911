from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from roadwork.trainer.config import TrainConfig
from roadwork.trainer.eval.metrics import mcc
from roadwork.trainer.model.classifier import build_model
from roadwork.trainer.eval.tta import (
    DEFAULT_VARIANTS,
    NONE,
    FeatureStats,
    TTAConfig,
    TTAPredictor,
    ViewWeights,
    compare_variants,
    foods_keep,
    fuse,
    grid_boxes,
    make_views,
    scale_view,
)

SIZE = 32


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny models run fastest on one thread; two threads on two busy cores spin against each other (50x slower).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return build_model(TrainConfig().model, SIZE).eval()


def images(n: int, seed: int = 0, size: int = SIZE) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


# ---------------------------------------------------------------------------------------------- views


def test_make_views_shapes_names_and_identity() -> None:
    x = images(2)
    views, names = make_views(x, TTAConfig())
    assert names == ["identity", "hflip", "scale0.8", "scale0.8_hflip", "scale1.2", "scale1.2_hflip"] + [
        f"tile_r{r}c{c}" for r in range(3) for c in range(3)
    ]
    assert views.shape == (2, 15, 3, SIZE, SIZE)
    assert torch.equal(views[:, 0], x)
    assert torch.equal(views[:, 1], torch.flip(x, [-1]))
    assert torch.equal(views[:, 3], torch.flip(views[:, 2], [-1]))
    assert torch.isfinite(views).all() and views.min() >= 0 and views.max() <= 1


def test_identity_only_config_is_a_single_view() -> None:
    x = images(3)
    views, names = make_views(x, TTAConfig(scales=(1.0,), grid=0, flips=False))
    assert names == ["identity"] and views.shape == (3, 1, 3, SIZE, SIZE)
    assert torch.equal(views[:, 0], x)


def test_scale_views_zoom_in_by_centre_crop_and_out_by_reflection() -> None:
    x = images(2, size=224)
    zoomed_in = F.interpolate(x, size=(269, 269), mode="bilinear", antialias=True)  # round(1.2 * 224)
    assert torch.equal(scale_view(x, 1.2), zoomed_in[..., 22:246, 22:246])
    small = F.interpolate(x, size=(179, 179), mode="bilinear", antialias=True)  # round(0.8 * 224)
    out = scale_view(x, 0.8)
    assert out.shape == x.shape
    assert torch.equal(out[..., 22:201, 22:201], small)  # 45 px of border: 22 before, 23 after
    assert torch.equal(out[..., 22:201, 21], small[..., :, 1])  # reflection, not a black letterbox
    with pytest.raises(ValueError, match="scales"):
        TTAConfig(scales=(0.4, 1.0))


def test_grid_boxes_at_224_side_90_stride_67() -> None:
    boxes = grid_boxes(224, 3, 0.25)
    # side = round(224 / (1 + 2 * 0.75)) = round(89.6) = 90; starts spread over 224 - 90 = 134 -> stride 67.
    starts = [0, 67, 134]
    assert boxes == [(t, left, t + 90, left + 90) for t in starts for left in starts]
    assert 90 - 67 == 23  # neighbouring tiles share 23 px = 25.6% of the side


@pytest.mark.parametrize(("size", "grid", "overlap"), [(224, 3, 0.25), (224, 2, 0.5), (224, 4, 0.0), (32, 3, 0.25)])
def test_grid_tiles_cover_the_image_with_the_requested_overlap(size: int, grid: int, overlap: float) -> None:
    boxes = grid_boxes(size, grid, overlap)
    assert len(boxes) == grid * grid
    covered = np.zeros((size, size), dtype=int)
    for top, left, bottom, right in boxes:
        assert 0 <= top < bottom <= size and 0 <= left < right <= size
        assert bottom - top == right - left  # square
        covered[top:bottom, left:right] += 1
    assert covered.min() >= 1  # edge to edge
    side = boxes[0][2] - boxes[0][0]
    lefts = sorted({b[1] for b in boxes})
    for a, b in zip(lefts, lefts[1:]):
        assert abs((side - (b - a)) - overlap * side) <= 1.5  # shared px = overlap * side, up to rounding


def test_tile_views_are_the_resized_crops() -> None:
    x = images(2)
    config = TTAConfig(scales=(1.0,), flips=False)
    views, names = make_views(x, config)
    (top, left, bottom, right) = grid_boxes(SIZE, 3, 0.25)[4]
    expected = F.interpolate(x[..., top:bottom, left:right], size=(SIZE, SIZE), mode="bilinear", antialias=True)
    assert names[5] == "tile_r1c1"
    torch.testing.assert_close(views[:, 5], expected, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------ predictor


def test_identity_only_tta_is_exactly_the_plain_model(model: nn.Module) -> None:
    x = images(8, seed=1)
    with torch.no_grad():
        plain = torch.sigmoid(model(x)).double().numpy()
    probs = TTAPredictor(model, NONE).predict(x)
    assert probs.dtype == np.float64 and np.array_equal(probs, plain)


def test_view_outputs_do_not_depend_on_the_batch_size(model: nn.Module) -> None:
    x = images(5, seed=2)
    config = TTAConfig()
    big_logits, big_feats = TTAPredictor(model, config, batch_size=1000).view_outputs(x)
    small_logits, small_feats = TTAPredictor(model, config, batch_size=16).view_outputs(x)  # 1 image per pass
    assert big_logits.shape == (5, 15) and big_feats.shape[:2] == (5, 15) and big_feats.shape[2] > 0
    np.testing.assert_allclose(small_logits, big_logits, atol=1e-5)
    np.testing.assert_allclose(small_feats, big_feats, atol=1e-4)
    views, _ = make_views(x, config)
    with torch.no_grad():
        direct = model(views[:, 7]).numpy()  # a tile view through the plain forward
    np.testing.assert_allclose(big_logits[:, 7], direct, atol=1e-5)


# --------------------------------------------------------------------------------------------- fusion


def test_fuse_mean_is_the_mean_of_sigmoids() -> None:
    logits = np.random.default_rng(0).normal(0, 3, (50, 7))
    np.testing.assert_allclose(fuse(logits, TTAConfig()), sigmoid(logits).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(fuse(logits.astype(np.float32), TTAConfig()), sigmoid(logits).mean(axis=1), atol=1e-6)


def test_top_k_keeps_the_most_confident_views() -> None:
    logits = np.array([[0.1, -3.0, 2.0], [5.0, -0.2, 0.3], [-1.0, 1.0, -4.0]])
    np.testing.assert_allclose(fuse(logits, TTAConfig(select_top_k=1)), sigmoid([-3.0, 5.0, -4.0]))
    two = fuse(logits, TTAConfig(select_top_k=2))
    # Row 2 ties |-1| and |1|: the earlier view wins, so the identity view is kept over a tied augmentation.
    np.testing.assert_allclose(two, sigmoid([[-3.0, 2.0], [5.0, 0.3], [-1.0, -4.0]]).mean(axis=1))
    # Within FOODS' keep mask only: row 0 may not use view 1, so view 2 is its most confident.
    keep = np.array([[True, False, True], [True, True, True], [True, True, True]])
    np.testing.assert_allclose(fuse(logits, TTAConfig(select_top_k=1), keep=keep)[0], sigmoid(2.0))


def test_learned_fusion_imputes_dropped_views() -> None:
    weights = ViewWeights(np.array([1.0, 2.0, -0.5]), 0.25)
    logits = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]])
    config = TTAConfig(fusion="learned")
    np.testing.assert_allclose(fuse(logits, config, weights), sigmoid(0.25 + logits @ weights.weights))
    keep = np.array([[True, False, True], [True, True, True]])
    imputed = np.array([1.0, 2.0, 3.0])  # view 1 dropped: replaced by the mean of views 0 and 2
    np.testing.assert_allclose(fuse(logits, config, weights, keep)[0], sigmoid(0.25 + imputed @ weights.weights))
    with pytest.raises(ValueError, match="ViewWeights"):
        fuse(logits, config)


def synthetic_view_logits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Five views; only view 2 carries the label, the others are loud noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    logits = rng.normal(0, 3.0, (n, 5))
    logits[:, 2] = (2 * labels - 1) * 1.5 + rng.normal(0, 1.0, n)
    return logits, labels


def test_view_weights_find_the_informative_view() -> None:
    val_logits, val_labels = synthetic_view_logits(400, seed=0)
    test_logits, test_labels = synthetic_view_logits(400, seed=1)
    weights = ViewWeights.fit(val_logits, val_labels)
    assert int(np.argmax(np.abs(weights.weights))) == 2 and weights.weights[2] > 0
    learned = fuse(test_logits, TTAConfig(fusion="learned"), weights)
    mean = fuse(test_logits, TTAConfig())
    assert mcc(test_labels, learned > 0.5) > mcc(test_labels, mean > 0.5) + 0.2
    again = ViewWeights.from_dict(json.loads(json.dumps(weights.to_dict())))
    assert np.array_equal(again.weights, weights.weights) and again.bias == weights.bias


def test_view_weights_match_sklearn_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression

    logits, labels = synthetic_view_logits(300, seed=2)
    l2 = 1e-2
    ours = ViewWeights.fit(logits, labels, l2=l2)
    # sklearn minimises 0.5 |w|^2 + C sum(loss); ours mean(loss) + l2/2 |w|^2, so C = 1 / (l2 N).
    ref = LogisticRegression(C=1 / (l2 * len(labels)), tol=1e-10, max_iter=10_000).fit(logits, labels)
    np.testing.assert_allclose(ours.weights, ref.coef_[0], atol=1e-4)
    assert ours.bias == pytest.approx(ref.intercept_[0], abs=1e-4)


# ----------------------------------------------------------------------------------------------- FOODS


def test_feature_stats_threshold_and_far_points() -> None:
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(8, 8))
    train = rng.normal(size=(2000, 8)) @ mixing + 5.0
    stats = FeatureStats.fit(train, quantile=0.95)
    assert np.mean(stats.distance(train) <= stats.threshold) == pytest.approx(0.95, abs=0.01)
    fresh = rng.normal(size=(2000, 8)) @ mixing + 5.0
    assert np.mean(stats.distance(fresh) <= stats.threshold) == pytest.approx(0.95, abs=0.03)
    sigma = train.std(axis=0)
    far = train.mean(axis=0) + 10 * sigma * np.eye(8)[3]
    assert stats.distance(far) > stats.threshold
    again = FeatureStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert np.array_equal(again.distance(fresh), stats.distance(fresh)) and again.threshold == stats.threshold


def test_feature_stats_without_shrinkage_is_plain_mahalanobis() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(500, 4)) * [1.0, 2.0, 0.5, 3.0]
    stats = FeatureStats.fit(train, shrinkage=0.0)
    d = train[:10] - train.mean(axis=0)
    expected = np.sqrt(np.einsum("ni,ij,nj->n", d, np.linalg.inv(np.cov(train, rowvar=False)), d))
    np.testing.assert_allclose(stats.distance(train[:10]), expected, rtol=1e-8)
    assert stats.distance(train[:6].reshape(2, 3, 4)).shape == (2, 3)  # (N, V, D) -> (N, V)


def test_foods_keep_never_drops_the_identity_view() -> None:
    stats = FeatureStats(np.zeros(2), np.eye(2), 1.0)
    features = np.array([[[9.0, 9.0], [0.1, 0.0], [5.0, 0.0]]])  # (1, 3, 2): identity and view 2 far away
    assert foods_keep(features, stats).tolist() == [[True, True, False]]


def test_foods_drops_a_black_view_and_keeps_the_identity(model: nn.Module) -> None:
    config = TTAConfig(scales=(1.0,), flips=False, grid=3, foods=True)
    top, left, bottom, right = grid_boxes(SIZE, 3, 0.25)[0]

    def with_black_corner(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[..., :bottom, :right] = 0.0  # tile r0c0 becomes a constant black view
        return x

    train = with_black_corner(images(200, seed=3))
    stats = FeatureStats.fit(TTAPredictor(model, NONE).view_outputs(train)[1][:, 0], quantile=0.95)
    predictor = TTAPredictor(model, config, stats=stats)
    x = with_black_corner(images(12, seed=4))
    logits, features = predictor.view_outputs(x)
    keep = predictor.keep(features)
    assert predictor.view_names[1] == "tile_r0c0"
    assert keep[:, 0].all() and not keep[:, 1].any()
    expected = (sigmoid(logits) * keep).sum(axis=1) / keep.sum(axis=1)
    np.testing.assert_allclose(predictor.predict(x), expected, atol=1e-6)


def test_predictor_refuses_missing_fitted_parts(model: nn.Module) -> None:
    with pytest.raises(ValueError, match="ViewWeights"):
        TTAPredictor(model, TTAConfig(fusion="learned"))
    with pytest.raises(ValueError, match="FeatureStats"):
        TTAPredictor(model, TTAConfig(foods=True))


# -------------------------------------------------------------------------------------------- variants


def test_compare_variants_reports_every_variant_against_none(model: nn.Module) -> None:
    labels_val = np.tile([0, 1], 12)
    labels_test = np.tile([0, 1], 8)
    rows = compare_variants(
        model, images(24, seed=5), labels_val, images(16, seed=6), labels_test, images(80, seed=7), DEFAULT_VARIANTS
    )
    assert [r["variant"] for r in rows] == list(DEFAULT_VARIANTS)
    by_name = {r["variant"]: r for r in rows}
    assert by_name["none"]["mcc_delta_vs_none"] == 0 and by_name["none"]["n_views"] == 1
    assert by_name["flips"]["n_views"] == 2 and by_name["multiscale"]["n_views"] == 3
    assert by_name["grid"]["n_views"] == 10 and by_name["all_mean"]["n_views"] == 15
    for r in rows:
        assert set(r) == {"variant", "n_views", "mcc", "accuracy", "ms_per_image", "mcc_delta_vs_none"}
        assert r["ms_per_image"] > 0 and -1 <= r["mcc"] <= 1 and 0 <= r["accuracy"] <= 1
        assert r["mcc_delta_vs_none"] == pytest.approx(r["mcc"] - by_name["none"]["mcc"])


def test_compare_variants_always_measures_the_baseline(model: nn.Module) -> None:
    labels = np.tile([0, 1], 4)
    only_flips = {"flips": DEFAULT_VARIANTS["flips"]}
    rows = compare_variants(model, images(8), labels, images(8, seed=1), labels, None, only_flips)
    assert [r["variant"] for r in rows] == ["none", "flips"]
    with pytest.raises(ValueError, match="baseline"):
        compare_variants(model, images(8), labels, images(8), labels, None, {"none": TTAConfig()})
