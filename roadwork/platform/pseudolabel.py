"""Pseudo-label masks of roadwork objects with SAM 3 (text-prompted concept segmentation).

Each image of a pool (NATIX parquet dataset, records, or image folder) gets one binary PNG, the union of SAM 3's
instance masks over the roadwork prompts, at ``<out>/masks/<safe id>.png`` (0/255); ``<out>/index.json`` maps ids
to mask file, pixel fraction, model and prompts.  Corrupt images are counted, never fatal; masks are written
atomically, and a re-run skips images already labelled by the same model and prompts (a killed job resumes).
Without torchvision, which transformers' ``Sam3ImageProcessor`` imports, :class:`PilSam3ImageProcessor` does the
same steps with Pillow; text prompts need nothing else from torchvision (box prompts would).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import CLIPTokenizer, Sam3Config, Sam3Model, Sam3Processor, Sam3ViTConfig
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD, PILImageResampling
from transformers.utils import is_torchvision_available

from roadwork.settings import load_settings
from roadwork.trainer.data.records import BadImageError, Record, decode_image, read_records

__all__ = ["ROADWORK_PROMPTS", "PseudoLabelReport", "PilSam3ImageProcessor", "load_sam3", "tiny_sam3", "segment",
           "pseudo_label", "pseudo_label_job"]

ROADWORK_PROMPTS = ("traffic cone", "construction barrier", "road work sign", "construction worker",
                    "construction vehicle", "construction equipment")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
INDEX_FLUSH_EVERY = 25  # images between index.json rewrites: a killed job loses at most this many entries
TINY_IMAGE_SIZE = 56  # 4x4 patches of 14 px


@dataclass(frozen=True)
class PseudoLabelReport:
    """What :func:`pseudo_label` did; ``n_images`` counts every image tried, labelled or failed."""

    n_images: int
    n_with_mask: int  # images whose mask has at least one pixel set
    n_failed: int  # rows or files that could not be decoded
    index_path: Path
    n_written: int = 0  # masks computed by this run (0 when everything was already done)


class PilSam3ImageProcessor(PilBackend):
    """``Sam3ImageProcessor``'s preprocessing and instance post-processing, with Pillow instead of torchvision."""

    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_STANDARD_MEAN
    image_std = IMAGENET_STANDARD_STD
    size = {"height": 1008, "width": 1008}
    do_resize = do_rescale = do_normalize = do_convert_rgb = True

    def preprocess(self, images: Any, segmentation_maps: Any = None, **kwargs: Any):  # noqa: ANN201  (a BatchFeature)
        if segmentation_maps is not None:
            raise NotImplementedError("segmentation maps need transformers' Sam3ImageProcessor (torchvision)")
        return super().preprocess(images, **kwargs)

    def post_process_instance_segmentation(self, outputs: Any, threshold: float = 0.3, mask_threshold: float = 0.5,
                                           target_sizes: Sequence[tuple[int, int]] | None = None) -> list[dict]:
        """Per image: scores (query x presence), xyxy boxes, binary masks resized to ``target_sizes``."""
        scores = outputs.pred_logits.sigmoid()  # (B, Q)
        if outputs.presence_logits is not None:
            scores = scores * outputs.presence_logits.sigmoid()  # (B, 1) broadcast
        results = []
        for i, (s, boxes, masks) in enumerate(zip(scores, outputs.pred_boxes, outputs.pred_masks.sigmoid())):
            keep = s > threshold
            boxes, masks = boxes[keep], masks[keep]  # (K, 4), (K, h, w)
            if target_sizes is not None:
                h, w = target_sizes[i]
                boxes = boxes * torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
                if len(masks):
                    masks = torch.nn.functional.interpolate(masks[None], size=(h, w), mode="bilinear",
                                                            align_corners=False)[0]
            results.append({"scores": s[keep], "boxes": boxes, "masks": (masks > mask_threshold).long()})
        return results


def _image_processor(size: int) -> Any:
    """Transformers' own SAM 3 image processor when torchvision is installed, else the Pillow twin."""
    if is_torchvision_available():
        from transformers.models.sam3.image_processing_sam3 import Sam3ImageProcessor

        return Sam3ImageProcessor(size={"height": size, "width": size})
    return PilSam3ImageProcessor(size={"height": size, "width": size})


def load_sam3(model_id: str = "facebook/sam3", device: str | torch.device = "cpu") -> tuple[Sam3Model, Sam3Processor]:
    """The pretrained SAM 3 detector (eval mode, on ``device``) and its processor, from the Hub or a local folder."""
    model = Sam3Model.from_pretrained(model_id).to(device).eval()
    if is_torchvision_available():
        processor = Sam3Processor.from_pretrained(model_id)
    else:
        from transformers import AutoTokenizer

        processor = Sam3Processor(_image_processor(model.config.image_size), AutoTokenizer.from_pretrained(model_id))
    return model, processor


def _char_tokenizer() -> CLIPTokenizer:
    """CLIP's tokenizer over single characters (no BPE merges): any ASCII prompt, nothing to download."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + string.punctuation:  # CLIP lower-cases its input
        vocab[c], vocab[c + "</w>"] = len(vocab), len(vocab) + 1
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32)


def tiny_sam3(seed: int = 0) -> tuple[Sam3Model, Sam3Processor]:
    """A random-weight SAM 3 small enough for CPU tests (width 16, one layer per stage, 56 px, 4 queries)."""
    tokenizer = _char_tokenizer()
    width, init = 16, 0.2  # init 0.2, not 0.02: mask logits of order 1, so thresholds matter in tests
    block = dict(hidden_size=width, num_attention_heads=2, initializer_range=init)
    layers = dict(block, num_layers=1, intermediate_size=2 * width)
    backbone = Sam3ViTConfig(**block, intermediate_size=2 * width, num_hidden_layers=1, image_size=TINY_IMAGE_SIZE,
                    pretrain_image_size=TINY_IMAGE_SIZE, patch_size=14, window_size=2, global_attn_indexes=[0])
    text = dict(block, vocab_size=len(tokenizer), intermediate_size=2 * width, projection_dim=width,
                num_hidden_layers=1, max_position_embeddings=32, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = Sam3Config(
        vision_config=dict(backbone_config=backbone, fpn_hidden_size=width, scale_factors=[2.0, 1.0],
                           initializer_range=init),
        text_config=text, geometry_encoder_config=layers, detr_encoder_config=layers,
        detr_decoder_config=dict(layers, num_queries=4), mask_decoder_config=dict(block, num_upsampling_stages=2),
        initializer_range=init,
    )
    torch.manual_seed(seed)
    return Sam3Model(config).eval(), Sam3Processor(_image_processor(TINY_IMAGE_SIZE), tokenizer)


def _repeat_vision(vision: Any, n: int) -> Any:
    """The vision features of one image repeated for ``n`` prompts (the backbone runs once)."""
    rep = lambda ts: tuple(t.repeat(n, *[1] * (t.dim() - 1)) for t in ts)  # noqa: E731  (1, C, h, w) -> (n, C, h, w)
    return type(vision)(fpn_hidden_states=rep(vision.fpn_hidden_states),
                        fpn_position_encoding=rep(vision.fpn_position_encoding))


@torch.inference_mode()
def segment(model: Sam3Model, processor: Sam3Processor, image: Image.Image, prompts: Sequence[str] = ROADWORK_PROMPTS,
            score_threshold: float = 0.5, mask_threshold: float = 0.5) -> np.ndarray:
    """Union of every instance mask scoring above ``score_threshold`` for any prompt: uint8 (H, W) in {0, 1}."""
    prompts = list(prompts)
    width, height = image.size
    pixels = processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
    text = processor(text=prompts, return_tensors="pt").to(model.device)
    vision = model.get_vision_features(pixel_values=pixels.to(model.device, model.dtype))
    outputs = model(vision_embeds=_repeat_vision(vision, len(prompts)), input_ids=text["input_ids"],
                    attention_mask=text["attention_mask"])  # one forward pass, batch = prompts
    results = processor.post_process_instance_segmentation(outputs, threshold=score_threshold,
                                                           mask_threshold=mask_threshold,
                                                           target_sizes=[(height, width)] * len(prompts))
    union = np.zeros((height, width), dtype=np.uint8)
    for r in results:
        if len(r["masks"]):
            union |= r["masks"].any(dim=0).cpu().numpy().astype(np.uint8)
    return union


def _safe_name(rid: str) -> str:
    """A file name for an id: readable, and unique thanks to a hash (ids may hold '/', ':' or be long)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", rid).strip("._")[:80] or "image"
    return f"{slug}-{hashlib.sha256(rid.encode()).hexdigest()[:10]}.png"


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _items(source: Path | Iterable[Record]) -> tuple[Iterator[tuple[str, Callable[[], bytes]]], int]:
    """(id, bytes loader) per image, and how many rows the reader already skipped as unusable."""
    if not isinstance(source, (str, Path)):
        return ((r.id, lambda r=r: r.image_bytes) for r in source), 0
    source = Path(source)
    if source.suffix == ".parquet" or (source.is_dir() and any(source.rglob("*.parquet"))):
        records, report = read_records(source, validate_images=False)  # decoded once, when labelled
        return ((r.id, lambda r=r: r.image_bytes) for r in records), sum(report.skipped.values())
    if not source.is_dir():
        raise FileNotFoundError(f"no dataset or image folder at {source}")
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return ((p.relative_to(source).as_posix(), p.read_bytes) for p in files), 0


def _load_index(path: Path) -> tuple[dict[str, Any], str]:
    """The index's mask entries (failures are retried, so not kept) and the text on disk."""
    try:
        text = path.read_text()
        masks = dict(json.loads(text)["masks"])
    except (FileNotFoundError, ValueError, TypeError, KeyError):  # none yet or unreadable: label everything
        text, masks = "", {}
    return {"masks": masks, "failed": {}, "skipped_rows": 0}, text


def _save_index(path: Path, index: dict[str, Any], on_disk: str) -> str:
    """Write index.json atomically if it changed (a no-op re-run touches no file); returns the text on disk."""
    text = json.dumps(index, indent=1)
    if text != on_disk:
        _write_atomic(path, lambda p: p.write_text(text))
    return text


def _is_done(entry: dict | None, made_by: dict[str, Any], out_dir: Path) -> bool:
    return bool(entry) and all(entry.get(k) == v for k, v in made_by.items()) and (out_dir / entry["mask"]).exists()


def _label_item(rid: str, load: Callable[[], bytes], index: dict[str, Any], out_dir: Path, model: Sam3Model,
                processor: Sam3Processor, made_by: dict[str, Any]) -> bool:
    """Label one image unless its mask is already there; a failure goes to ``index["failed"]``. True: written."""
    if _is_done(index["masks"].get(rid), made_by, out_dir):
        return False
    try:
        image = decode_image(load())
    except (BadImageError, OSError) as exc:  # OSError: a file that vanished or cannot be read
        index["failed"][rid] = getattr(exc, "reason", "unreadable")
        return False
    mask = segment(model, processor, image, made_by["prompts"], made_by["score_threshold"], made_by["mask_threshold"])
    rel = f"masks/{_safe_name(rid)}"
    _write_atomic(out_dir / rel, lambda p: Image.fromarray(mask * 255, mode="L").save(p, format="PNG"))
    index["masks"][rid] = {"mask": rel, "fraction": float(mask.mean()), **made_by}
    return True


def pseudo_label(records_or_folder: Path | str | Iterable[Record], out_dir: Path | str, *, model: Sam3Model,
                 processor: Sam3Processor, prompts: Sequence[str] = ROADWORK_PROMPTS,
                 progress: Callable[[int], None] | None = None, score_threshold: float = 0.5,
                 mask_threshold: float = 0.5, model_name: str | None = None) -> PseudoLabelReport:
    """Write a mask per image of a parquet dataset, records or an image folder; see the module docstring.

    ``progress(k)`` is called with the number of images done after each one.  Images whose index entry was made
    by the same model, prompts and thresholds, and whose mask file exists, are skipped.
    """
    out_dir = Path(out_dir)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.json"
    index, saved = _load_index(index_path)
    made_by = {"model": model_name or model.name_or_path or type(model).__name__, "prompts": list(prompts),
               "score_threshold": score_threshold, "mask_threshold": mask_threshold}
    items, index["skipped_rows"] = _items(records_or_folder)
    seen: list[str] = []  # ids with a mask, new or kept
    n_written = 0
    try:
        for k, (rid, load) in enumerate(items, start=1):
            if _label_item(rid, load, index, out_dir, model, processor, made_by):
                n_written += 1
                if n_written % INDEX_FLUSH_EVERY == 0:
                    saved = _save_index(index_path, index, saved)
            if rid not in index["failed"]:
                seen.append(rid)
            if progress is not None:
                progress(k)
    finally:
        _save_index(index_path, index, saved)
    n_failed = len(index["failed"]) + index["skipped_rows"]
    n_with_mask = sum(index["masks"][rid]["fraction"] > 0 for rid in set(seen))
    return PseudoLabelReport(n_images=len(seen) + n_failed, n_with_mask=n_with_mask, n_failed=n_failed,
                             index_path=index_path, n_written=n_written)


def pseudo_label_job(pool: str = "", model_id: str = "facebook/sam3") -> dict[str, Any]:
    """Scheduler entry point: label ``pool`` (default ``<datasets>/synth``) into ``<home>/pseudolabels/<name>``."""
    settings = load_settings()
    source = Path(pool).expanduser() if pool else settings.datasets_dir / "synth"
    if not source.exists():  # before loading a large model
        raise FileNotFoundError(f"pseudo-label pool not found: {source}")
    out_dir = settings.home / "pseudolabels" / (source.stem if source.is_file() else source.name)
    model, processor = load_sam3(model_id, device="cuda" if torch.cuda.is_available() else "cpu")
    report = pseudo_label(source, out_dir, model=model, processor=processor, model_name=model_id)
    return {"pool": str(source), "model_id": model_id, "out_dir": str(out_dir),
            **asdict(report), "index_path": str(report.index_path)}
