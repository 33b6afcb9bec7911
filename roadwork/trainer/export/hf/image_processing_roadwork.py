"""Image processor of an exported Roadwork Ops classifier: the product's own preprocessing.

RGB, centre square crop on the shorter side, bilinear resize to `size`, scaled to [0, 1] (the model
normalises inside). Validators send 224 x 224 images, for which the crop is a no-op.
"""

import numpy as np
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature


def square_resize(image: Image.Image, size: int) -> Image.Image:
    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((size, size), Image.Resampling.BILINEAR)


class RoadworkImageProcessor(BaseImageProcessor):
    model_input_names = ["pixel_values"]

    def __init__(self, size: int = 224, **kwargs) -> None:
        super().__init__(**kwargs)
        self.size = int(size["height"] if isinstance(size, dict) else size)

    def preprocess(self, images, return_tensors=None, **_: object) -> BatchFeature:  # noqa: ANN001
        if not isinstance(images, (list, tuple)):
            images = [images]
        arrays = [np.asarray(square_resize(img, self.size), dtype=np.float32) / 255.0 for img in images]
        pixel_values = np.stack(arrays).transpose(0, 3, 1, 2)  # (B, 3, S, S)
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=return_tensors)
