"""From records to training tensors: images decoded once (uint8), labels, metadata, GPS sampling weights.

Images are stored as uint8 (a quarter of float32's memory) and turned into [0, 1] floats per batch on the
training device, where augmentation runs too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from roadwork.trainer.config import TrainConfig
from roadwork.trainer.data.images import center_square
from roadwork.trainer.data.records import ImageDataset, Record, ReadReport, read_records, split_records
from roadwork.trainer.model.layers.metadata_encoder import TEXT_DIM
from roadwork.trainer.data.metadata import MetadataVocab, build_vocab, parse_record
from roadwork.trainer.model.multiview import MetadataBatch


@dataclass
class Split:
    """One split as tensors: images (N, 3, S, S) uint8, labels (N,) float, metadata, sampling weights."""

    images: torch.Tensor
    labels: torch.Tensor
    metadata: MetadataBatch
    ids: list[str]
    weights: torch.Tensor | None = None  # (N,) draw weights per epoch; None: a plain shuffle
    masks: torch.Tensor | None = None  # (N, 1, S, S) uint8 0/1 roadwork masks; None: no mask source
    mask_valid: torch.Tensor | None = None  # (N,) bool: the row has a mask

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, MetadataBatch]:
        """Rows `idx` on `device`: images float in [0, 1], labels, metadata."""
        images = self.images[idx].to(device, non_blocking=True).float().div_(255.0)
        return images, self.labels[idx].to(device), self.metadata.index(idx).to(device)

    def masks_for(self, idx: torch.Tensor, device: torch.device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Rows `idx`' masks (float 0/1) and which rows have one; (None, None) without a mask source."""
        if self.masks is None:
            return None, None
        return self.masks[idx].to(device).float(), self.mask_valid[idx].to(device)


def load_masks(folder: Path | str, records: Sequence[Record], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of `records` from a pseudo-label folder (`index.json` maps record ids to mask PNGs), cropped and
    resized like the images (centre square, then `size`): (N, 1, S, S) uint8 0/1 and (N,) bool (has a mask)."""
    folder = Path(folder)
    index_path = folder / "index.json"
    if not index_path.exists():
        raise FileNotFoundError(f"data.masks: no index.json in {folder} (run the pseudo_label job first)")
    entries = json.loads(index_path.read_text()).get("masks", {})
    masks = torch.zeros(len(records), 1, size, size, dtype=torch.uint8)
    valid = torch.zeros(len(records), dtype=torch.bool)
    for i, rec in enumerate(records):
        entry = entries.get(rec.id)
        path = folder / entry["mask"] if entry else None
        if path is None or not path.exists():
            continue
        with Image.open(path) as img:
            square = center_square(img.convert("L"), size)
        masks[i, 0] = torch.from_numpy((np.asarray(square) >= 128).astype(np.uint8))
        valid[i] = True
    return masks, valid


@dataclass
class PreparedData:
    train: Split
    val: Split
    records: list[Record]
    read_report: ReadReport
    vocab: MetadataVocab | None
    sampling_report: dict[str, Any] | None = None
    hard_negative_ids: list[str] = field(default_factory=list)

    @property
    def vocab_sizes(self) -> tuple[int, int, int] | None:
        """(weather, daytime, scene) table sizes the model's metadata embeddings need; None without metadata."""
        return None if self.vocab is None else tuple(self.vocab.size(k) for k in ("weather", "daytime", "scene"))


def data_fingerprint(records: Sequence[Record]) -> str:
    """sha256 over (id, label, image sha256) of every record, in id order: names the data a model saw."""
    digest = hashlib.sha256()
    for rec in sorted(records, key=lambda r: r.id):
        digest.update(f"{rec.id}\t{rec.label}\t{hashlib.sha256(rec.image_bytes).hexdigest()}\n".encode())
    return digest.hexdigest()


def decode_images(records: Sequence[Record], image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every record once (level-0: centre square, bilinear resize): images (N, 3, S, S) uint8, labels (N,)."""
    dataset = ImageDataset(list(records), image_size)
    if len(dataset) == 0:
        return torch.zeros(0, 3, image_size, image_size, dtype=torch.uint8), torch.zeros(0)
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(images).mul_(255).round_().to(torch.uint8), torch.stack(labels).float()


def encode_metadata(
    records: Sequence[Record], vocab: MetadataVocab | None, text_encoder: Callable | None = None
) -> MetadataBatch:
    """Records -> MetadataBatch. Without a vocabulary every field is missing. Weather is multi-label in the data
    but one embedding per row in the model: the first recognised label is used (documented trade-off)."""
    n = len(records)
    if vocab is None:
        return MetadataBatch.missing(n)
    parsed = [parse_record(r) for r in records]
    gps = torch.tensor([p.gps if p.gps is not None else (float("nan"),) * 2 for p in parsed], dtype=torch.float32)
    codes = [vocab.encode(p) for p in parsed]
    text = torch.zeros(n, TEXT_DIM)
    if text_encoder is not None:
        from roadwork.trainer.model.layers.metadata_encoder import embed_texts  # noqa: PLC0415

        text = embed_texts([p.description for p in parsed], text_encoder, device=torch.device("cpu"))
    return MetadataBatch(
        gps=gps.view(n, 2),
        weather=torch.tensor([c["weather"][0] for c in codes], dtype=torch.long),
        daytime=torch.tensor([c["daytime"] for c in codes], dtype=torch.long),
        scene=torch.tensor([c["scene"] for c in codes], dtype=torch.long),
        text=text,
    )


def gps_targets(spec: str, val_recs: Sequence[Record]) -> list[Any] | Path:
    """`sampling.gps.targets` -> what `sampling.load_targets` reads: 'val' (the validation split's GPS), a .csv or
    .json file of coordinates, or any dataset source `read_records` accepts (its rows' GPS)."""
    if spec == "val":
        return [r.gps for r in val_recs]
    if Path(spec).suffix.lower() in (".csv", ".json"):
        if not Path(spec).exists():
            raise FileNotFoundError(f"sampling.gps.targets: no such file {spec}")
        return Path(spec)
    records, _ = read_records(spec)
    return [r.gps for r in records]


def _gps_weights(config: TrainConfig, train_recs: Sequence[Record], val_recs: Sequence[Record],
                 log: Callable[[str], None]) -> tuple[torch.Tensor, dict[str, Any]]:
    from roadwork.trainer.data.sampling import GpsWeighting, gps_sampler  # noqa: PLC0415 (scikit-learn k-means)

    gps = config.sampling.gps
    targets = gps_targets(gps.targets, val_recs)
    weighting = GpsWeighting(n_clusters=gps.n_clusters, seed=config.optim.seed, weights=tuple(gps.weights),
                             missing_weight=gps.no_gps_weight)
    built = gps_sampler(list(train_recs), targets, weighting)
    report = built.report
    w, u = report["weighted"], report["uniform"]
    log(f"GPS sampling: {w['share_within_50km']:.0%} of draws within 50 km of a target centre "
        f"(uniform: {u['share_within_50km']:.0%}), mean {w['mean_distance_km']:.0f} km")
    return torch.as_tensor(built.weights, dtype=torch.float64), report


def prepare_data(
    config: TrainConfig,
    data_path: Path | str,
    *,
    hard_negative_ids: Sequence[str] = (),
    oversample: int = 3,
    log: Callable[[str], None] = print,
) -> PreparedData:
    """Read, split, decode, encode metadata and weight rows, as the config says.

    Records whose id is in `hard_negative_ids` appear `oversample` times per epoch."""
    records, report = read_records(data_path)
    skipped = sum(report.skipped.values())
    if skipped:
        log(f"skipped {skipped} bad rows of {report.n_read}: {report.skipped}")
    train_recs, val_recs = split_records(records, config.data.val_fraction, config.data.split_seed)
    if not train_recs or not val_recs:
        raise ValueError(f"{data_path}: too few usable rows to train ({len(records)} after skipping bad ones)")
    hard = set(hard_negative_ids)
    if hard:
        extra = [r for r in train_recs if r.id in hard] * max(0, oversample - 1)
        log(f"oversampling {len(extra) // max(1, oversample - 1)} hard negatives x{oversample}")
        train_recs = train_recs + extra

    meta_cfg = config.model.metadata
    vocab = build_vocab(train_recs) if config.model.architecture == "multiview" and meta_cfg.enabled else None
    text_encoder = None
    if vocab is not None and meta_cfg.text:
        from roadwork.trainer.model.layers.metadata_encoder import MiniLMTextEncoder  # noqa: PLC0415

        text_encoder = MiniLMTextEncoder()
    size = config.data.image_size
    x_train, y_train = decode_images(train_recs, size)
    x_val, y_val = decode_images(val_recs, size)
    weights, sampling_report = None, None
    if config.sampling.gps.enabled:
        weights, sampling_report = _gps_weights(config, train_recs, val_recs, log)
    masks = mask_valid = None
    if config.data.masks and config.model.architecture == "multiview" and config.model.segmentation_head:
        masks, mask_valid = load_masks(config.data.masks, train_recs, size)
        log(f"segmentation masks for {int(mask_valid.sum())} of {len(train_recs)} training rows")
    return PreparedData(
        # validation runs as the competition does: pixels only, every metadata field missing
        train=Split(x_train, y_train, encode_metadata(train_recs, vocab, text_encoder), [r.id for r in train_recs],
                    weights, masks, mask_valid),
        val=Split(x_val, y_val, MetadataBatch.missing(len(val_recs)), [r.id for r in val_recs]),
        records=records,
        read_report=report,
        vocab=vocab,
        sampling_report=sampling_report,
        hard_negative_ids=sorted(hard),
    )
