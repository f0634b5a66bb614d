"""`image-rotate`: the Core engine's image-rotate service — an image turned clockwise by a given angle."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ..protocol import FieldDescription
from . import ServiceError, ServiceInfo, TaskInput, TaskOutput
from .fields import input_for, shown, text_parameter
from .images import IMAGE_PROCESSING, IMAGE_TYPES, open_image, save_image

DEFAULT_ROTATION = 90.0

# Clockwise quarter turns as Pillow's transpositions, which turn counter-clockwise.
QUARTER_TURNS = {
    1: Image.Transpose.ROTATE_270,
    2: Image.Transpose.ROTATE_180,
    3: Image.Transpose.ROTATE_90,
}


def rotation_degrees(text: str) -> float:
    """Degrees clockwise from the `rotation` parameter; empty means a quarter turn."""
    if not text:
        return DEFAULT_ROTATION
    try:
        degrees = float(text)
    except ValueError:
        raise ServiceError(f"rotation: {shown(text)} is not a number of degrees") from None
    if not math.isfinite(degrees):
        raise ServiceError(f"rotation: {shown(text)} is not a finite number of degrees")
    return degrees


def rotated(image: Image.Image, degrees: float) -> Image.Image:
    """Multiples of 90° are exact quarter turns that lose no pixel; other angles resample, on a canvas grown
    to hold the whole turned image."""
    if degrees.is_integer() and int(degrees) % 90 == 0:
        turns = int(degrees) // 90 % 4
        return image.transpose(QUARTER_TURNS[turns]) if turns else image
    return image.rotate(-degrees, expand=True, resample=Image.Resampling.BICUBIC)


class ImageRotate:
    info = ServiceInfo(
        name="Image Rotate",
        slug="image-rotate",
        summary="Rotate an image clockwise by a given angle.",
        description=(
            "Rotates a PNG or JPEG image clockwise by `rotation` degrees (90 when empty) and returns it in "
            "the same format. Multiples of 90 are lossless quarter turns; other angles are resampled "
            "bicubically on a canvas enlarged to hold the whole image."
        ),
        data_in_fields=(
            FieldDescription(name="image", type=list(IMAGE_TYPES)),
            FieldDescription(name="rotation", type=["text/plain"], format_hint="degrees clockwise, e.g. 90"),
        ),
        data_out_fields=(FieldDescription(name="result", type=list(IMAGE_TYPES)),),
        tags=(IMAGE_PROCESSING,),
    )

    def process(self, inputs: Sequence[TaskInput], workdir: Path) -> Sequence[TaskOutput]:
        degrees = rotation_degrees(text_parameter(input_for(inputs, "rotation")))
        image = input_for(inputs, "image")
        return [save_image(rotated(open_image(image), degrees), "result", image.mime_type, workdir)]
