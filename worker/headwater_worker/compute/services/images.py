"""Reading and writing the images of the image services: PNG and JPEG only, the declared type checked against
the content, decompression bombs refused, the output in the input's format."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from ...logs import one_line
from ..protocol import ExecutionUnitTag, MimeType
from . import ServiceError, TaskInput, TaskOutput
from .fields import shown

IMAGE_TYPES: tuple[MimeType, ...] = ("image/png", "image/jpeg")
PIL_FORMATS: dict[MimeType, str] = {"image/png": "PNG", "image/jpeg": "JPEG"}
EXTENSIONS: dict[MimeType, str] = {"image/png": ".png", "image/jpeg": ".jpg"}
# One fixed quality, so the same task gives the same bytes; high enough that a re-encode is not visible.
JPEG_QUALITY = 90
IMAGE_PROCESSING = ExecutionUnitTag(name="Image Processing", acronym="IP")


def open_image(given: TaskInput) -> Image.Image:
    """The image, decoded, turned upright as its EXIF orientation says (the output carries no EXIF, so the
    orientation must be in the pixels)."""
    expected = PIL_FORMATS.get(given.mime_type)
    if expected is None:
        raise ServiceError(f"{given.field}: {given.mime_type} is not an image type this service takes")
    # Only PNG and JPEG decoders are tried: no other of Pillow's many formats is reachable from a task.
    data = io.BytesIO(given.path.read_bytes())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(data, formats=list(PIL_FORMATS.values()))
            if image.format != expected:
                key = shown(given.key)
                raise ServiceError(
                    f"{given.field}: the content is {image.format}, but {key} says {given.mime_type}"
                )
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ServiceError(f"{given.field}: refused: {one_line(str(error))}") from None
    except UnidentifiedImageError:
        raise ServiceError(f"{given.field}: not a PNG or JPEG image ({shown(given.key)})") from None
    except (OSError, SyntaxError, ValueError) as error:  # what Pillow's decoders raise for damaged data
        raise ServiceError(f"{given.field}: damaged {expected} data: {one_line(str(error))}") from None
    return image


def save_image(image: Image.Image, field: str, mime_type: MimeType, workdir: Path) -> TaskOutput:
    path = workdir / f"{field}{EXTENSIONS[mime_type]}"
    if mime_type == "image/jpeg":
        # The JPEG encoder keeps a colour profile only when asked; EXIF is left out on purpose.
        image.save(path, "JPEG", quality=JPEG_QUALITY, icc_profile=image.info.get("icc_profile"))
    else:
        image.save(path, "PNG")
    return TaskOutput(field=field, mime_type=mime_type, path=path)
