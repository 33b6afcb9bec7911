"""The student: a classifier in an architecture the stock miner's transformers (4.45.2) already knows.

The stock miner loads `AutoModelForImageClassification` + `AutoImageProcessor` with no remote code and answers the
softmax score of the label "Roadwork" as it is (COMPETITION.md). So the student is a plain
`Dinov2ForImageClassification` (default) or `ViTForImageClassification` with the labels {0: "None",
1: "Roadwork"}, preprocessed by the stock image processor of its kind, and its calibration lives in its weights:
`shift_threshold` moves the head's bias so that the softmax crosses 0.5 exactly where the calibrated cut is.

    model, processor = build_student("dinov2", tiny=TinySizes())      # random init (tests, no Hub)
    model, processor = build_student("dinov2", pretrained="facebook/dinov2-small")
    shift_threshold(model, 0.37)                                      # bake the calibrated cut into the head
    roadwork_probability(model(pixel_values=x).logits)                # what the stock pipeline answers
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from roadwork.trainer.model.backbones import TinySizes, spec_for_kind

ID2LABEL = {0: "None", 1: "Roadwork"}  # the stock miner's labels; it answers the score of "Roadwork"
LABEL2ID = {label: i for i, label in ID2LABEL.items()}
ROADWORK = LABEL2ID["Roadwork"]
IMAGE_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, as both pretrained families were trained with
IMAGE_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class StudentSpec:
    kind: str  # our name (`--student`)
    model_class: str  # the transformers class the stock miner's AutoModelForImageClassification resolves to
    config_class: str
    processor_class: str  # the (slow) image processor transformers 4.45.2 maps this model_type to
    backbone_kind: str | None  # the backbone registry entry whose tiny sizes this kind shares, if any
    pretrained: str  # the default Hub checkpoint where the Hub is reachable
    description: str = ""


STUDENTS: dict[str, StudentSpec] = {
    spec.kind: spec
    for spec in (
        StudentSpec(kind="dinov2", model_class="Dinov2ForImageClassification", config_class="Dinov2Config",
                    processor_class="BitImageProcessor", backbone_kind="dinov2",
                    pretrained="facebook/dinov2-small", description="DINOv2 ViT with a linear head; the default"),
        StudentSpec(kind="vit", model_class="ViTForImageClassification", config_class="ViTConfig",
                    processor_class="ViTImageProcessor", backbone_kind=None,
                    pretrained="google/vit-base-patch16-224-in21k", description="ViT with a linear head"),
    )
}
STUDENT_KINDS: tuple[str, ...] = tuple(STUDENTS)
DEFAULT_STUDENT = "dinov2"


def student_spec(kind: str) -> StudentSpec:
    try:
        return STUDENTS[kind]
    except KeyError:
        raise ValueError(f"unknown student kind {kind!r}; expected one of {', '.join(STUDENT_KINDS)}") from None


def _tiny_kwargs(spec: StudentSpec, sizes: TinySizes) -> dict[str, Any]:
    if spec.backbone_kind is not None:
        return spec_for_kind(spec.backbone_kind).tiny(sizes)
    return {"hidden_size": sizes.hidden_size, "num_hidden_layers": sizes.num_layers,
            "num_attention_heads": sizes.num_heads, "intermediate_size": 4 * sizes.hidden_size,
            "patch_size": sizes.patch_size, "image_size": sizes.image_size}


def processor_kwargs(image_size: int) -> dict[str, Any]:
    """The stock processor's settings: RGB, resize to `image_size` x `image_size` (bilinear), scale, normalise.

    No centre crop: validators send 224 x 224 images, where any resize to 224 x 224 is the identity, and a
    plain resize keeps the whole frame of larger training images."""
    return {"do_convert_rgb": True, "do_resize": True, "size": {"height": image_size, "width": image_size},
            "resample": 2, "do_center_crop": False, "do_rescale": True, "rescale_factor": 1 / 255,
            "do_normalize": True, "image_mean": list(IMAGE_MEAN), "image_std": list(IMAGE_STD)}


def build_student(kind: str = DEFAULT_STUDENT, *, pretrained: str | None = None, tiny: TinySizes | None = None,
                  image_size: int = 224) -> tuple[Any, Any]:
    """(model, image processor) of a two-class student with the stock labels.

    `pretrained`: a Hub id or local folder to start from (its head is replaced); otherwise `tiny` sizes (default
    `TinySizes()`) give a random-init model, as in tests and where no Hub is reachable."""
    import transformers

    spec = student_spec(kind)
    model_class = getattr(transformers, spec.model_class)
    labels = {"num_labels": 2, "id2label": dict(ID2LABEL), "label2id": dict(LABEL2ID)}
    if pretrained:
        model = model_class.from_pretrained(pretrained, ignore_mismatched_sizes=True, **labels)
    else:
        sizes = tiny or TinySizes(image_size=image_size)
        config = getattr(transformers, spec.config_class)(**_tiny_kwargs(spec, sizes), **labels)
        model = model_class(config)
    processor = getattr(transformers, spec.processor_class)(**processor_kwargs(image_size))
    return model, processor


def head(model: Any) -> Any:
    """The final Linear layer (both stock classes call it `classifier`)."""
    return model.classifier


def shift_threshold(model: Any, threshold: float) -> None:
    """Move the calibrated cut `threshold` (on the Roadwork softmax) to 0.5: subtract logit(t) from the
    Roadwork-minus-None bias difference. Afterwards softmax > 0.5 exactly where the old softmax was > t."""
    import torch

    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold!r}")
    with torch.no_grad():
        head(model).bias[ROADWORK] -= math.log(threshold / (1.0 - threshold))


def roadwork_probability(logits: Any) -> Any:
    """The stock pipeline's answer: the softmax score of "Roadwork" (a tensor of shape (B,))."""
    return logits.float().softmax(dim=-1)[:, ROADWORK]


def pixel_values(processor: Any, images: Any) -> Any:
    """A batch of PIL images -> the student's input tensor (B, 3, S, S), by the student's own image processor:
    the very preprocessing the stock pipeline applies, in training, evaluation and serving alike."""
    return processor(images=list(images), return_tensors="pt")["pixel_values"]


STUDENT_FORMAT = "roadwork-student/1"  # `format` in a student folder's roadwork.json
META = "roadwork.json"
PROCESSOR_CONFIG = "preprocessor_config.json"


def save_student(model: Any, processor: Any, out_dir: Any, meta: dict[str, Any]) -> None:
    """A plain model repository (config.json, model.safetensors, preprocessor_config.json) plus roadwork.json.

    The processor's config names no class, so that the model_type picks the stock processor: newer releases save
    a `...Pil` variant when torchvision is missing, a name the stock miner's transformers cannot resolve, and
    under 4.45.2 `use_fast=True` turns a named `BitImageProcessor` into `BitImageProcessorFast`, which 4.45.2
    does not have (the load fails), while the model_type dinov2 maps to the slow `BitImageProcessor` there."""
    import json
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    spec = next(s for s in STUDENTS.values() if s.model_class == type(model).__name__)
    config_path = out / PROCESSOR_CONFIG
    config = json.loads(config_path.read_text())
    config.pop("image_processor_type", None)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / META).write_text(json.dumps({"format": STUDENT_FORMAT, "student_kind": spec.kind, **meta}, indent=2,
                                       sort_keys=True) + "\n")


def _stock_spec(path: Any) -> StudentSpec | None:
    """The student kind of a plain model repository (config.json naming a stock student class, no roadwork.json),
    as published for the stock miner; None for anything else."""
    import json
    from pathlib import Path

    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    classes = config.get("architectures") or [] if isinstance(config, dict) else []
    return next((s for s in STUDENTS.values() if s.model_class in classes), None)


def is_student_dir(path: Any) -> bool:
    """A folder written by `save_student`, or a plain stock model repository of a student class without it."""
    import json
    from pathlib import Path

    meta = Path(path) / META
    if not meta.exists():
        return _stock_spec(path) is not None
    try:
        return meta.is_file() and json.loads(meta.read_text()).get("format") == STUDENT_FORMAT
    except (OSError, ValueError):
        return False


def read_student_meta(path: Any) -> dict[str, Any]:
    """roadwork.json of a student folder (ValueError when it is not one)."""
    import json
    from pathlib import Path

    meta = json.loads((Path(path) / META).read_text())
    if meta.get("format") != STUDENT_FORMAT:
        raise ValueError(f"{path}: not a student folder (format {meta.get('format')!r})")
    return meta


def load_student(path: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode, image processor, roadwork.json) of a folder written by `save_student`; a plain stock
    repository without roadwork.json loads too (its meta is then only `student_kind`)."""
    import json
    from pathlib import Path

    import transformers

    path = Path(path)
    if not (path / META).exists() and (stock := _stock_spec(path)) is not None:
        meta: dict[str, Any] = {"student_kind": stock.kind}
    else:
        meta = read_student_meta(path)
    spec = student_spec(meta["student_kind"])
    model = getattr(transformers, spec.model_class).from_pretrained(path).eval()
    settings = json.loads((path / PROCESSOR_CONFIG).read_text())
    processor = getattr(transformers, spec.processor_class)(
        **{k: settings[k] for k in processor_kwargs(224) if k in settings})
    return model, processor, meta
