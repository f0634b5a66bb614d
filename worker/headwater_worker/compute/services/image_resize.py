"""`image-resize`: an image scaled to a given size, or to a given width or height keeping its proportions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ..protocol import FieldDescription
from . import ServiceError, ServiceInfo, TaskInput, TaskOutput
from .fields import input_for, shown, text_parameter
from .images import IMAGE_PROCESSING, IMAGE_TYPES, open_image, save_image

MAX_SIDE = 20_000
_SIZE = re.compile(r"(?P<width>\d*)\s*[xX]\s*(?P<height>\d*)")

Size = tuple[int | None, int | None]


def requested_size(text: str) -> Size:
    """`WIDTHxHEIGHT` from the `size` parameter; a side left empty follows the image's proportions."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ServiceError(f"size: {shown(text)} is not WIDTHxHEIGHT (e.g. 640x480, 640x or x480)")
    width, height = (int(side) if side else None for side in match.group("width", "height"))
    if width is None and height is None:
        raise ServiceError(f"size: {shown(text)} gives neither a width nor a height")
    for name, side in (("width", width), ("height", height)):
        if side is not None and not 1 <= side <= MAX_SIDE:
            raise ServiceError(f"size: the {name} {side} is not between 1 and {MAX_SIDE}")
    return width, height


def target_size(original: tuple[int, int], size: Size) -> tuple[int, int]:
    width, height = size
    if width is not None and height is not None:
        return width, height
    original_width, original_height = original
    if width is not None:
        return width, max(1, round(width * original_height / original_width))
    assert height is not None
    return max(1, round(height * original_width / original_height)), height


class ImageResize:
    info = ServiceInfo(
        name="Image Resize",
        slug="image-resize",
        summary="Resize an image to a width and height, or to one of them keeping its proportions.",
        description=(
            "Resizes a PNG or JPEG image with Lanczos resampling and returns it in the same format. "
            f"`size` is WIDTHxHEIGHT in pixels, each side 1 to {MAX_SIDE}; leaving one side empty "
            "(640x or x480) computes it from the image's aspect ratio."
        ),
        data_in_fields=(
            FieldDescription(name="image", type=list(IMAGE_TYPES)),
            FieldDescription(
                name="size", type=["text/plain"], format_hint="WIDTHxHEIGHT, e.g. 640x480 or 640x"
            ),
        ),
        data_out_fields=(FieldDescription(name="result", type=list(IMAGE_TYPES)),),
        tags=(IMAGE_PROCESSING,),
    )

    def process(self, inputs: Sequence[TaskInput], workdir: Path) -> Sequence[TaskOutput]:
        size = requested_size(text_parameter(input_for(inputs, "size")))
        given = input_for(inputs, "image")
        image = open_image(given)
        width, height = target_size(image.size, size)
        # The output is held in memory as a whole: it is bound like an input, by Pillow's bomb limit.
        if Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS:
            raise ServiceError(
                f"size: {width}x{height} is more than the limit of {Image.MAX_IMAGE_PIXELS} pixels"
            )
        resized = image.resize((width, height), Image.Resampling.LANCZOS)
        return [save_image(resized, "result", given.mime_type, workdir)]
