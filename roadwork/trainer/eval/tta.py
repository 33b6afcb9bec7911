"""Test-time augmentation (TTA): several views of each image, one batched forward pass, fused into one probability.

Every part is a switch in `TTAConfig`, and `compare_variants` measures each combination against the plain model
(the identity view only) on the same test set in the same run: MCC, accuracy and milliseconds per image.

View geometry (S is the input side; view 0 is always the untouched input):
- scale s > 1 zooms in: bilinear resize to round(s*S), centre crop S. At S=224, s=1.2 -> 269 px, crop offset 22.
- scale s < 1 zooms out: resize to round(s*S), pad back to S by reflection (reflection, not black, so the
  border looks like scene rather than a letterbox the model never saw). At S=224, s=0.8 -> 179 px + 22/23 px.
  Scales below 0.5 are refused: the mirrored border would outweigh the image. Scale 1.0 is the identity view.
- flips mirror the identity view and each scale view horizontally (the trainer flips images too, so these views
  are in distribution); grid tiles are not flipped: they are local looks, and doubling them costs 2x for little.
- grid g with overlap o cuts g x g square tiles of side t = round(S / (1 + (g-1)(1-o))) whose starts are spread
  evenly from 0 to S-t, so tiles cover the image edge to edge and neighbours share about o of their side; each
  tile is resized back to S. At S=224, g=3, o=0.25: side 90 px, stride 67 px, starts 0/67/134 (overlap 23 px).

View order: identity, hflip, then per scale (ascending, 1.0 skipped) scale then its flip, then tiles row-major.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from roadwork.trainer.eval.metrics import binary_metrics

FUSIONS = ("mean", "learned")
MIN_SCALE = 0.5


@dataclass(frozen=True)
class TTAConfig:
    scales: tuple[float, ...] = (0.8, 1.0, 1.2)  # 1.0 is the identity view; >1 zooms in, <1 zooms out (>= 0.5)
    grid: int = 3  # g x g tiles; 0 = none (1 is refused: one tile is the identity view again)
    grid_overlap: float = 0.25  # share of a tile's side that neighbouring tiles have in common
    flips: bool = True  # horizontal flip of the identity view and of each scale view
    fusion: str = "mean"  # "mean" of probabilities | "learned" (ViewWeights fitted on validation)
    select_top_k: int | None = None  # keep the k most confident views (largest |logit|) per image before fusing
    foods: bool = False  # drop views whose features are out of distribution; the identity view is never dropped
    foods_quantile: float = 0.95  # quantile of training distances that FeatureStats uses as the OOD threshold

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        if any(not MIN_SCALE <= s < float("inf") for s in self.scales):
            raise ValueError(f"'scales' must all be finite and >= {MIN_SCALE}, got {self.scales}")
        if self.grid < 0 or self.grid == 1:
            raise ValueError(f"'grid' must be 0 (no tiles) or >= 2, got {self.grid}")
        if not 0 <= self.grid_overlap < 1:
            raise ValueError(f"'grid_overlap' must be in [0, 1), got {self.grid_overlap}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"'fusion' must be one of {FUSIONS}, got {self.fusion!r}")
        if self.select_top_k is not None and self.select_top_k < 1:
            raise ValueError(f"'select_top_k' must be None or >= 1, got {self.select_top_k}")
        if not 0 < self.foods_quantile < 1:
            raise ValueError(f"'foods_quantile' must be in (0, 1), got {self.foods_quantile}")

    @property
    def zoom_scales(self) -> tuple[float, ...]:
        """The scales that make views of their own: sorted, deduplicated, without the identity 1.0."""
        return tuple(sorted({s for s in self.scales if s != 1.0}))


# ---------------------------------------------------------------------------------------------- views


def grid_boxes(size: int, grid: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of the grid x grid square tiles, row-major; [] for grid 0."""
    if grid == 0:
        return []
    side = round(size / (1 + (grid - 1) * (1 - overlap)))
    starts = [round(i * (size - side) / (grid - 1)) for i in range(grid)]
    return [(top, left, top + side, left + side) for top in starts for left in starts]


def view_names(config: TTAConfig) -> list[str]:
    """The names of the views `make_views` makes, in order; "identity" first."""
    names = ["identity"] + (["hflip"] if config.flips else [])
    for s in config.zoom_scales:
        names += [f"scale{s:g}"] + ([f"scale{s:g}_hflip"] if config.flips else [])
    return names + [f"tile_r{r}c{c}" for r in range(config.grid) for c in range(config.grid)]


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def scale_view(pixels: torch.Tensor, scale: float) -> torch.Tensor:
    """(B, 3, S, S) -> (B, 3, S, S) zoomed in (centre crop) or out (reflection pad) by `scale`."""
    size = pixels.shape[-1]
    side = round(scale * size)
    if side == size:
        return pixels
    resized = _resize(pixels, side)  # (B, 3, side, side)
    if side > size:
        off = (side - size) // 2
        return resized[..., off : off + size, off : off + size]
    before = (size - side) // 2
    after = size - side - before
    return F.pad(resized, (before, after, before, after), mode="reflect")


def make_views(pixels: torch.Tensor, config: TTAConfig) -> tuple[torch.Tensor, list[str]]:
    """(B, 3, S, S) in [0, 1] -> views (B, V, 3, S, S) and their names; view 0 is the input itself."""
    if pixels.ndim != 4 or pixels.shape[-1] != pixels.shape[-2]:
        raise ValueError(f"pixels must be (B, 3, S, S), got {tuple(pixels.shape)}")
    size = pixels.shape[-1]
    views = [pixels] + ([pixels.flip(-1)] if config.flips else [])
    for s in config.zoom_scales:
        zoomed = scale_view(pixels, s)
        views += [zoomed] + ([zoomed.flip(-1)] if config.flips else [])
    boxes = grid_boxes(size, config.grid, config.grid_overlap)
    if boxes:
        crops = torch.stack([pixels[..., t:b, l:r] for t, l, b, r in boxes], dim=1)  # (B, G, 3, side, side)
        tiles = _resize(crops.flatten(0, 1), size).unflatten(0, crops.shape[:2])  # (B, G, 3, S, S)
        views += list(tiles.unbind(1))
    return torch.stack(views, dim=1), view_names(config)  # (B, V, 3, S, S)


# ------------------------------------------------------------------------------------- OOD statistics


@dataclass(frozen=True, eq=False)
class FeatureStats:
    """Mean and shrinkage-regularised inverse covariance of training features; `threshold` is a quantile of
    the training points' own Mahalanobis distances, above which a view counts as out of distribution."""

    mean: np.ndarray  # (D,)
    precision: np.ndarray  # (D, D)
    threshold: float

    @classmethod
    def fit(cls, features: np.ndarray, quantile: float = 0.95, shrinkage: float = 0.1) -> FeatureStats:
        """From (N, D) features; covariance shrunk towards (trace/D) I so that N < D still inverts."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"features must be (N >= 2, D), got {x.shape}")
        if not 0 <= shrinkage <= 1:
            raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
        mean = x.mean(axis=0)
        cov = np.atleast_2d(np.cov(x, rowvar=False))
        target = max(float(np.trace(cov)) / len(cov), 1e-12)
        shrunk = (1 - shrinkage) * cov + shrinkage * target * np.eye(len(cov))
        precision = np.linalg.pinv(shrunk, hermitian=True)
        unfitted = cls(mean, precision, 0.0)
        return cls(mean, precision, float(np.quantile(unfitted.distance(x), quantile)))

    def distance(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distances of (..., D) features -> (...)."""
        d = np.asarray(features, dtype=np.float64) - self.mean
        sq = np.sum((d @ self.precision) * d, axis=-1)  # a matmul: einsum's three-operand loop is 10x slower
        return np.sqrt(np.maximum(sq, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "precision": self.precision.tolist(), "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureStats:
        mean, precision = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["precision"], dtype=np.float64)
        if mean.ndim != 1 or precision.shape != (len(mean), len(mean)):
            raise ValueError(f"'precision' must be (D, D) for a mean of length D, got {precision.shape}")
        return cls(mean, precision, float(d["threshold"]))


def foods_keep(features: np.ndarray, stats: FeatureStats) -> np.ndarray:
    """(N, V, D) view features -> (N, V) bool, True where in distribution; the identity view is always kept."""
    keep = stats.distance(features) <= stats.threshold
    keep[:, 0] = True
    return keep


# -------------------------------------------------------------------------------------------- fusion


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    if logits.dtype == np.float32:
        # torch's own float32 sigmoid, widened: identity-only TTA is then bit-identical to Predictor.raw_probs.
        return torch.sigmoid(torch.from_numpy(np.ascontiguousarray(logits))).double().numpy()
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64)))  # overflow-free


def selected_views(view_logits: np.ndarray, config: TTAConfig, keep: np.ndarray | None = None) -> np.ndarray:
    """(N, V) bool: the views `keep` allows (all when None), narrowed to the `select_top_k` largest |logit|
    (ties go to the earlier view, so the identity wins them)."""
    keep = np.ones(view_logits.shape, dtype=bool) if keep is None else np.asarray(keep, dtype=bool).copy()
    if not keep.any(axis=1).all():
        raise ValueError("every image needs at least one kept view")
    k = config.select_top_k
    if k is None or k >= view_logits.shape[1]:
        return keep
    confidence = np.where(keep, np.abs(view_logits), -np.inf)
    top = np.argsort(-confidence, axis=1, kind="stable")[:, :k]  # (N, k)
    chosen = np.zeros_like(keep)
    np.put_along_axis(chosen, top, True, axis=1)
    return chosen & keep


def impute_dropped(view_logits: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Dropped views' logits replaced by the mean logit of the image's kept views, so that a learned
    weighting (fitted on all V) still applies; a view that is all kept is unchanged."""
    logits = np.asarray(view_logits, dtype=np.float64)
    kept_mean = (logits * keep).sum(axis=1) / keep.sum(axis=1)  # (N,)
    return np.where(keep, logits, kept_mean[:, None])


@dataclass(frozen=True, eq=False)
class ViewWeights:
    """Learned fusion: p = sigmoid(bias + weights . view_logits), a logistic regression on the V logits."""

    weights: np.ndarray  # (V,)
    bias: float

    @classmethod
    def fit(cls, view_logits: np.ndarray, labels: np.ndarray, l2: float = 1e-2) -> ViewWeights:
        """Minimise mean log-loss + l2/2 |weights|^2 (bias unpenalised) by damped Newton steps."""
        x = np.asarray(view_logits, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64).ravel()
        if x.ndim != 2 or len(x) != len(y):
            raise ValueError(f"view_logits must be (N, V) with N = len(labels), got {x.shape} and {y.shape}")
        if len(np.unique(y)) != 2:
            raise ValueError("labels must hold both classes to fit view weights")
        design = np.hstack([x, np.ones((len(x), 1))])  # (N, V + 1), last column the bias
        reg = np.r_[np.full(x.shape[1], l2), 0.0]

        def objective(beta: np.ndarray) -> float:
            z = design @ beta
            return float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(reg * beta**2))

        beta = np.zeros(design.shape[1])
        for _ in range(100):
            p = _sigmoid(design @ beta)
            grad = design.T @ (p - y) / len(y) + reg * beta
            hess = (design.T * (p * (1 - p))) @ design / len(y) + np.diag(reg + 1e-9)
            step = np.linalg.solve(hess, grad)
            t, current = 1.0, objective(beta)
            while objective(beta - t * step) > current and t > 1e-6:
                t /= 2
            beta = beta - t * step
            if np.max(np.abs(t * step)) < 1e-10:
                break
        return cls(beta[:-1], float(beta[-1]))

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.tolist(), "bias": self.bias}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ViewWeights:
        weights = np.asarray(d["weights"], dtype=np.float64)
        if weights.ndim != 1:
            raise ValueError(f"'weights' must be a list of numbers, got shape {weights.shape}")
        return cls(weights, float(d["bias"]))


def fuse(
    view_logits: np.ndarray,
    config: TTAConfig,
    weights: ViewWeights | None = None,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """(N, V) view logits -> (N,) probabilities. `keep` (N, V) marks the views allowed (FOODS); top-k selection
    from `config` then narrows them. "mean" averages the kept views' probabilities; "learned" applies
    `weights` with dropped views imputed by `impute_dropped`."""
    logits = np.asarray(view_logits)
    if logits.ndim != 2:
        raise ValueError(f"view_logits must be (N, V), got {logits.shape}")
    chosen = selected_views(logits, config, keep)
    if config.fusion == "learned":
        if weights is None or len(weights.weights) != logits.shape[1]:
            raise ValueError(f"learned fusion needs ViewWeights for {logits.shape[1]} views")
        return _sigmoid(weights.bias + impute_dropped(logits, chosen) @ weights.weights)
    probs = _sigmoid(logits)  # (N, V) float64
    return (probs * chosen).sum(axis=1) / chosen.sum(axis=1)


# ----------------------------------------------------------------------------------------- predictor


def logit_and_features(model: nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, 3, S, S) -> logits (M,) and the feature vector the classifier head reads (M, D), for any model with
    a `head` (the single-image and the multi-view classifier; an ensemble has none)."""
    head = getattr(model, "head", None)
    if head is None:
        raise ValueError(f"TTA needs a model with one classifier head; {type(model).__name__} has none "
                         "(an ensemble: evaluate it without --tta)")
    captured: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda _m, args, _out: captured.append(args[0]))
    try:
        logits = model(pixels)
    finally:
        handle.remove()
    return logits, captured[-1]


class TTAPredictor:
    """A model plus a TTA config (and what the config needs fitted) -> fused roadwork probabilities, raw
    (apply the model version's Calibration on top, as Predictor does)."""

    def __init__(
        self,
        model: nn.Module,
        config: TTAConfig,
        weights: ViewWeights | None = None,
        stats: FeatureStats | None = None,
        batch_size: int = 64,  # views per forward pass; whole images are never split across passes
    ) -> None:
        self.model = model.eval()
        self.config = config
        self.view_names = view_names(config)
        if config.fusion == "learned" and (weights is None or len(weights.weights) != len(self.view_names)):
            raise ValueError(f"learned fusion needs ViewWeights for the {len(self.view_names)} views")
        if config.foods and stats is None:
            raise ValueError("foods needs FeatureStats of the training features")
        self.weights, self.stats = weights, stats
        self.batch_size = batch_size

    @torch.no_grad()
    def view_outputs(self, pixels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3, S, S) -> per-view logits (N, V) float32 and CLS features (N, V, D) float32."""
        n_views = len(self.view_names)
        per_pass = max(1, self.batch_size // n_views)  # images per forward pass
        device = next(self.model.parameters()).device
        logits, features = [], []
        for i in range(0, len(pixels), per_pass):
            views, _ = make_views(pixels[i : i + per_pass].to(device), self.config)  # (b, V, 3, S, S)
            out, feats = logit_and_features(self.model, views.flatten(0, 1))  # (b * V,), (b * V, D)
            logits.append(out.view(-1, n_views).float().cpu().numpy())
            features.append(feats.view(-1, n_views, feats.shape[-1]).float().cpu().numpy())
        if not logits:
            return np.zeros((0, n_views), np.float32), np.zeros((0, n_views, 0), np.float32)
        return np.concatenate(logits), np.concatenate(features)

    def keep(self, features: np.ndarray) -> np.ndarray | None:
        """The FOODS mask of (N, V, D) view features, or None when FOODS is off."""
        return foods_keep(features, self.stats) if self.config.foods else None

    def predict(self, pixels: torch.Tensor) -> np.ndarray:
        """(N, 3, S, S) in [0, 1] -> fused probabilities (N,) float64."""
        logits, features = self.view_outputs(pixels)
        return fuse(logits, self.config, self.weights, self.keep(features))


# ------------------------------------------------------------------------------------------ variants

NONE = TTAConfig(scales=(1.0,), grid=0, flips=False)
DEFAULT_VARIANTS: dict[str, TTAConfig] = {
    "none": NONE,
    "flips": TTAConfig(scales=(1.0,), grid=0, flips=True),
    "multiscale": TTAConfig(grid=0, flips=False),
    "grid": TTAConfig(scales=(1.0,), flips=False),
    "all_mean": TTAConfig(),
    "all_learned": TTAConfig(fusion="learned"),
    "all_topk": TTAConfig(select_top_k=5),
    "all_foods": TTAConfig(foods=True),
}


def compare_variants(
    model: nn.Module,
    pixels_val: torch.Tensor,
    labels_val: np.ndarray,
    pixels_test: torch.Tensor,
    labels_test: np.ndarray,
    pixels_train_for_stats: torch.Tensor | None,
    variants: dict[str, TTAConfig] = DEFAULT_VARIANTS,
    batch_size: int = 64,
    repeats: int = 1,
) -> list[dict[str, Any]]:
    """Fit what each variant needs (ViewWeights on validation, FeatureStats on identity-view features of the
    training images), then measure it on the test set. One row per variant, "none" (the plain model) first:
    {"variant", "n_views", "mcc", "accuracy", "ms_per_image", "mcc_delta_vs_none"}.

    Each variant first predicts one forward pass' worth of test images untimed (allocator and kernel set-up
    for its batch shape), then `ms_per_image` is the fastest of `repeats` timed predictions of the test set."""
    if "none" in variants and len(view_names(variants["none"])) != 1:
        raise ValueError("variant 'none' is the baseline and must be the identity view only")
    variants = {"none": NONE, **{k: v for k, v in variants.items() if k != "none"}}
    if any(c.foods for c in variants.values()) and pixels_train_for_stats is None:
        raise ValueError("a foods variant needs training images for its feature statistics")
    train_features: np.ndarray | None = None
    rows = []
    for name, config in variants.items():
        stats = weights = None
        if config.foods:
            if train_features is None:
                plain = TTAPredictor(model, NONE, batch_size=batch_size)
                train_features = plain.view_outputs(pixels_train_for_stats)[1]  # (N, 1, D)
            stats = FeatureStats.fit(train_features[:, 0], config.foods_quantile)
        if config.fusion == "learned":
            probe = TTAPredictor(model, replace(config, fusion="mean"), stats=stats, batch_size=batch_size)
            val_logits, val_features = probe.view_outputs(pixels_val)
            chosen = selected_views(val_logits, config, probe.keep(val_features))
            weights = ViewWeights.fit(impute_dropped(val_logits, chosen), labels_val)
        predictor = TTAPredictor(model, config, weights, stats, batch_size)
        predictor.predict(pixels_test[: max(1, batch_size // len(predictor.view_names))])  # warm-up, untimed
        elapsed = float("inf")
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            probs = predictor.predict(pixels_test)
            elapsed = min(elapsed, time.perf_counter() - start)
        metrics = binary_metrics(labels_test, probs)
        rows.append(
            {
                "variant": name,
                "n_views": len(predictor.view_names),
                "mcc": metrics["mcc"],
                "accuracy": metrics["accuracy"],
                "ms_per_image": 1000.0 * elapsed / max(len(pixels_test), 1),
            }
        )
    for row in rows:
        row["mcc_delta_vs_none"] = row["mcc"] - rows[0]["mcc"]
    return rows
