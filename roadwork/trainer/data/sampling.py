"""GPS-weighted sampling: draw training rows near a target region more often.

1. Centres: k-means (scikit-learn, fixed seed) on the target set's coordinates. The points are clustered as
   unit vectors on the sphere (x, y, z), not as raw degrees, so that a degree of longitude does not count as
   much near Seattle as near Miami and clusters never split at the antimeridian; each centre is projected
   back to (lat, lon).
2. Distance: great-circle (haversine, mean Earth radius 6371.0088 km) from each training row to its nearest
   centre, in vectorised numpy.
3. Weight by distance bracket: < 50 km, 50-200, 200-500, >= 500 km -> 5.0 / 2.5 / 1.0 / 0.3 by default
   (a distance equal to an edge falls in the farther bracket); rows without usable GPS get ``missing_weight``
   (1.0 by default: neither favoured nor shunned).
4. A ``torch.utils.data.WeightedRandomSampler`` (with replacement, seeded generator) over those weights, and
   :func:`sampling_report`, which draws from it and compares with uniform sampling.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch.utils.data import WeightedRandomSampler

from roadwork.trainer.data.metadata import parse_gps

__all__ = [
    "EARTH_RADIUS_KM",
    "GpsSampling",
    "GpsWeighting",
    "bracket_weights",
    "fit_centres",
    "gps_sampler",
    "gps_weights",
    "haversine_km",
    "load_targets",
    "make_sampler",
    "nearest_km",
    "sampling_report",
    "to_points",
]

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
_CHUNK = 65_536  # rows per block in nearest_km: keeps the (rows, centres) distance matrix small


@dataclass(frozen=True)
class GpsWeighting:
    """How training rows are weighted by their distance to the target region (JSON-able via ``asdict``)."""

    n_clusters: int = 8  # k-means centres (fewer when the targets have fewer distinct points)
    seed: int = 0  # k-means random_state and the sampler's generator
    edges_km: tuple[float, ...] = (50.0, 200.0, 500.0)  # bracket edges, increasing
    weights: tuple[float, ...] = (5.0, 2.5, 1.0, 0.3)  # one per bracket: len(edges_km) + 1
    missing_weight: float = 1.0  # rows without usable GPS

    def __post_init__(self) -> None:
        if self.n_clusters < 1:
            raise ValueError(f"n_clusters must be >= 1, got {self.n_clusters}")
        if not self.edges_km:
            raise ValueError("edges_km needs at least one edge")
        if len(self.weights) != len(self.edges_km) + 1:
            raise ValueError(f"need len(edges_km) + 1 = {len(self.edges_km) + 1} weights, got {len(self.weights)}")
        if any(e <= 0 for e in self.edges_km) or any(b <= a for a, b in zip(self.edges_km, self.edges_km[1:])):
            raise ValueError(f"edges_km must be positive and strictly increasing, got {self.edges_km}")
        if any(not np.isfinite(w) or w < 0 for w in (*self.weights, self.missing_weight)):
            raise ValueError("weights must be finite and >= 0")


# ------------------------------------------------------------------------------------------- distances


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Great-circle distance in km between points given in degrees; numpy broadcasting over the arguments."""
    p1, p2 = np.radians(np.asarray(lat1, dtype=np.float64)), np.radians(np.asarray(lat2, dtype=np.float64))
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def nearest_km(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N, 2) points and (K, 2) centres as (lat, lon) -> (N,) km to the nearest centre; NaN rows stay NaN."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    if len(centres) == 0:
        raise ValueError("no centres")
    out = np.empty(len(points))
    for i in range(0, len(points), _CHUNK):
        p = points[i : i + _CHUNK]
        d = haversine_km(p[:, None, 0], p[:, None, 1], centres[None, :, 0], centres[None, :, 1])  # (n, K)
        out[i : i + _CHUNK] = d.min(axis=1)  # NaN propagates: rows without GPS
    return out


# --------------------------------------------------------------------------------------------- targets


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    return next((lowered.index(n) for n in names if n in lowered), None)


def _from_csv(path: Path) -> list[Any]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return []
    header = rows[0]
    lat, lon = _column(header, ("lat", "latitude")), _column(header, ("lon", "lng", "long", "longitude"))
    gps = _column(header, ("gps",))
    if lat is not None and lon is not None:
        return [(r[lat], r[lon]) if len(r) > max(lat, lon) else None for r in rows[1:]]
    if gps is not None:
        return [r[gps] if len(r) > gps else None for r in rows[1:]]
    raise ValueError(f"{path}: need 'lat' and 'lon' columns (or 'latitude'/'longitude', or one 'gps' column)")


def _from_json(path: Path) -> list[Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise TypeError(f"{path}: expected a JSON list of [lat, lon], {{'lat': .., 'lon': ..}} or GPS strings")
    out: list[Any] = []
    for item in data:
        if isinstance(item, dict):
            lat = item.get("lat", item.get("latitude"))
            lon = item.get("lon", item.get("lng", item.get("longitude")))
            out.append((lat, lon) if lat is not None and lon is not None else item.get("gps"))
        else:
            out.append(item)
    return out


def _as_gps(item: Any) -> tuple[float, float] | None:
    """A (lat, lon) pair, a GPS string or anything with a ``gps`` attribute (a Record) -> (lat, lon) or None."""
    if item is not None and not isinstance(item, (str, bytes, list, tuple, np.ndarray)) and hasattr(item, "gps"):
        item = item.gps
    if isinstance(item, np.ndarray):
        item = item.tolist()
    return parse_gps(item)  # range-checked; pairs of numeric strings (CSV cells) work too


def to_points(items: Sequence[Any]) -> np.ndarray:
    """Items (see :func:`_as_gps`) -> (N, 2) float64 (lat, lon), NaN where an item has no usable GPS."""
    pts = np.full((len(items), 2), np.nan)
    for i, item in enumerate(items):
        g = _as_gps(item)
        if g is not None:
            pts[i] = g
    return pts


def load_targets(source: Any) -> np.ndarray:
    """The target set -> (M, 2) (lat, lon) of its usable points (unusable ones dropped).

    ``source``: a path (``.csv`` with lat/lon or gps columns, ``.json`` list), a sequence of (lat, lon) pairs,
    GPS strings or records, or an (M, 2) array.
    """
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() in (".csv", ".json"):
        path = Path(source)
        items = _from_csv(path) if path.suffix.lower() == ".csv" else _from_json(path)
    else:
        items = list(source)
    pts = to_points(items)
    return pts[~np.isnan(pts).any(axis=1)]


# ------------------------------------------------------------------------------------------------ fit


def _to_xyz(latlon: np.ndarray) -> np.ndarray:
    lat, lon = np.radians(latlon[:, 0]), np.radians(latlon[:, 1])
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)  # (M, 3)


def fit_centres(targets: np.ndarray, n_clusters: int = 8, seed: int = 0) -> np.ndarray:
    """k-means centres (K, 2) (lat, lon) of the (M, 2) targets; K = min(n_clusters, distinct targets)."""
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 2)
    if len(targets) == 0:
        raise ValueError("no usable target coordinates")
    k = min(n_clusters, len(np.unique(targets, axis=0)))
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(_to_xyz(targets))
    c = km.cluster_centers_  # (K, 3), inside the sphere: project back to the surface
    lat = np.degrees(np.arctan2(c[:, 2], np.hypot(c[:, 0], c[:, 1])))
    lon = np.degrees(np.arctan2(c[:, 1], c[:, 0]))
    return np.stack([lat, lon], axis=1)


# -------------------------------------------------------------------------------------------- weights


def bracket_weights(distances_km: np.ndarray, config: GpsWeighting = GpsWeighting()) -> np.ndarray:
    """(N,) km (NaN = no GPS) -> (N,) weights by bracket (see the module docstring)."""
    d = np.asarray(distances_km, dtype=np.float64)
    idx = np.searchsorted(np.asarray(config.edges_km), np.nan_to_num(d, nan=0.0), side="right")
    w = np.asarray(config.weights, dtype=np.float64)[idx]
    return np.where(np.isnan(d), config.missing_weight, w)


def gps_weights(
    rows: Sequence[Any], centres: np.ndarray, config: GpsWeighting = GpsWeighting()
) -> tuple[np.ndarray, np.ndarray]:
    """Training rows (records, GPS strings or (lat, lon) pairs, None for no GPS) -> (weights, km to the
    nearest centre, NaN without GPS), both (N,)."""
    distances = nearest_km(to_points(rows), centres)
    return bracket_weights(distances, config), distances


def make_sampler(weights: np.ndarray, num_samples: int | None = None, seed: int = 0) -> WeightedRandomSampler:
    """A with-replacement sampler over ``weights`` (``num_samples`` draws per epoch, default one per row)."""
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    if w.numel() == 0 or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be finite, >= 0, non-empty and not all zero")
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(w, num_samples or len(w), replacement=True, generator=generator)


# --------------------------------------------------------------------------------------------- report


def _summary(distances: np.ndarray, idx: np.ndarray) -> dict[str, float]:
    """Shares and mean over the drawn rows ``idx``; distance figures over the drawn rows that have GPS."""
    d = distances[idx]
    has = ~np.isnan(d)
    dg = d[has]
    share = (lambda m: float(m.mean())) if len(dg) else (lambda m: float("nan"))
    return {
        "share_within_50km": share(dg < 50.0),
        "share_within_100km": share(dg < 100.0),
        "mean_distance_km": float(dg.mean()) if len(dg) else float("nan"),
        "share_without_gps": float(1.0 - has.mean()),
        "distinct_rows": len(np.unique(idx)),
    }


def _bracket_counts(distances: np.ndarray, edges: tuple[float, ...]) -> dict[str, int]:
    """``{"<50km": n, "50-200km": n, ..., ">=500km": n}`` for distances without NaN."""
    idx = np.searchsorted(np.asarray(edges), distances, side="right")
    names = [f"<{edges[0]:g}km"] + [f"{a:g}-{b:g}km" for a, b in itertools.pairwise(edges)] + [f">={edges[-1]:g}km"]
    return {name: int((idx == i).sum()) for i, name in enumerate(names)}


def sampling_report(
    distances_km: np.ndarray, weights: np.ndarray, n_draws: int = 20_000, seed: int = 0,
    config: GpsWeighting | None = None,
) -> dict[str, Any]:
    """Draw ``n_draws`` rows with a sampler over ``weights`` (its own seeded generator, so training's sampler
    is not advanced) and as many uniformly; compare where they lie. JSON-able (NaN where nothing has GPS)."""
    d = np.asarray(distances_km, dtype=np.float64)
    weighted = np.fromiter(iter(make_sampler(weights, n_draws, seed)), dtype=np.int64, count=n_draws)
    uniform = torch.randint(len(d), (n_draws,), generator=torch.Generator().manual_seed(seed)).numpy()
    with_gps = d[~np.isnan(d)]
    report: dict[str, Any] = {
        "n_rows": len(d),
        "n_rows_with_gps": len(with_gps),
        "n_draws": int(n_draws),
        "seed": int(seed),
        "weighted": _summary(d, weighted),
        "uniform": _summary(d, uniform),
    }
    if config is not None:
        report["config"] = asdict(config)
        report["rows_per_bracket"] = _bracket_counts(with_gps, config.edges_km)
        report["rows_per_bracket"]["no_gps"] = int(len(d) - len(with_gps))
    return report


# ------------------------------------------------------------------------------------------- one call


@dataclass(frozen=True)
class GpsSampling:
    """Everything :func:`gps_sampler` built, for the training loop and its logs."""

    centres: np.ndarray  # (K, 2) lat, lon
    distances_km: np.ndarray  # (N,) NaN = no GPS
    weights: np.ndarray  # (N,)
    sampler: WeightedRandomSampler
    report: dict[str, Any]  # sampling_report(...)


def gps_sampler(
    rows: Sequence[Any], targets: Any, config: GpsWeighting = GpsWeighting(), num_samples: int | None = None,
    n_report_draws: int = 20_000,
) -> GpsSampling:
    """Centres from ``targets`` (see :func:`load_targets`), weights for ``rows``, a sampler and its report."""
    centres = fit_centres(load_targets(targets), config.n_clusters, config.seed)
    weights, distances = gps_weights(rows, centres, config)
    report = sampling_report(distances, weights, n_report_draws, config.seed, config)
    report["centres"] = [[round(float(a), 5), round(float(b), 5)] for a, b in centres]
    return GpsSampling(centres, distances, weights, make_sampler(weights, num_samples, config.seed), report)
