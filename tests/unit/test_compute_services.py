"""The compute services built into the worker, on real images and CSV files made here, and the plugin point
that finds them: entry points of real (temporary) installed distributions."""

from __future__ import annotations

import csv
import io
import json
import random
import statistics
import sys
import textwrap
import tomllib
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from headwater_worker.compute.protocol import MIME_TYPES, MimeType, ServiceRegistration
from headwater_worker.compute.services import (
    ENTRY_POINT_GROUP,
    ComputeService,
    ServiceError,
    TaskInput,
)
from headwater_worker.compute.services.csv_profile import SAMPLE_ROWS, CsvProfile, profile_csv
from headwater_worker.compute.services.image_resize import ImageResize
from headwater_worker.compute.services.image_rotate import ImageRotate
from headwater_worker.compute.services.images import JPEG_QUALITY
from headwater_worker.compute.services.registry import (
    UnknownServiceError,
    discover,
    load,
    service_named,
)
from PIL import Image

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
BUILT_INS = {"image-rotate", "image-resize", "csv-profile"}
# The Core engine's fixed set of execution unit tags.
CORE_TAGS = {
    ("Image Processing", "IP"),
    ("Image Recognition", "IR"),
    ("Natural Language Processing", "NLP"),
    ("Anomaly Detection", "AD"),
    ("Recommendation", "R"),
    ("Time Series", "TS"),
    ("Clustering", "C"),
    ("Segmentation", "S"),
    ("Speech Recognition", "SR"),
    ("Data Preprocessing", "DP"),
    ("Sentiment Analysis", "SA"),
    ("Neural Networks", "NN"),
}


# --- inputs made here -------------------------------------------------------------------------------------


def asymmetric(mode: str, size: tuple[int, int] = (37, 23)) -> Image.Image:
    """Every pixel different from its mirror images, so a wrong turn or flip cannot pass."""
    width, height = size
    rgba = bytes(
        channel
        for y in range(height)
        for x in range(width)
        for channel in ((x * 7) % 256, (y * 11) % 256, (x * y + 3 * x) % 256, (40 + x * 5 + y * 3) % 256)
    )
    return Image.frombytes("RGBA", size, rgba).convert(mode)


def encoded(image: Image.Image, pil_format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, pil_format, **options)
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def pixels(image: Image.Image) -> list[list[int]]:
    return sorted(np.asarray(image).reshape(-1, len(image.getbands())).tolist())


PNG_RGB = encoded(asymmetric("RGB"), "PNG")
PNG_RGBA = encoded(asymmetric("RGBA"), "PNG")
JPEG = encoded(asymmetric("RGB"), "JPEG", quality=85)
IMAGES: dict[str, tuple[bytes, MimeType]] = {
    "rgb-png": (PNG_RGB, "image/png"),
    "rgba-png": (PNG_RGBA, "image/png"),
    "jpeg": (JPEG, "image/jpeg"),
}


class Task:
    """A task's inputs as the worker hands them over: each field's file in a directory of inputs, and an
    empty workdir for the outputs."""

    def __init__(self, root: Path) -> None:
        self.inputs_dir = root / "inputs"
        self.workdir = root / "work"
        self.inputs_dir.mkdir()
        self.workdir.mkdir()
        self.inputs: list[TaskInput] = []

    def add(self, field: str, data: bytes, mime_type: MimeType) -> TaskInput:
        extension = {"image/png": ".png", "image/jpeg": ".jpg", "text/csv": ".csv"}.get(mime_type, ".txt")
        key = f"{len(self.inputs)}-{field}{extension}"
        path = self.inputs_dir / key
        path.write_bytes(data)
        given = TaskInput(field=field, key=key, mime_type=mime_type, path=path)
        self.inputs.append(given)
        return given

    def run(self, service: ComputeService) -> tuple[bytes, MimeType, Path]:
        (output,) = service.process(self.inputs, self.workdir)
        assert output.path.parent == self.workdir
        return output.path.read_bytes(), output.mime_type, output.path


@pytest.fixture
def task(tmp_path: Path) -> Task:
    return Task(tmp_path)


def image_task(task: Task, image: bytes, mime_type: MimeType, parameter: str, text: str) -> Task:
    task.add("image", image, mime_type)
    task.add(parameter, text.encode(), "text/plain")
    return task


def refused(service: ComputeService, task: Task) -> str:
    with pytest.raises(ServiceError) as caught:
        service.process(task.inputs, task.workdir)
    message = str(caught.value)
    assert "\n" not in message
    assert list(task.workdir.iterdir()) == []
    return message


# --- image-rotate -----------------------------------------------------------------------------------------


def pillow_rotated_clockwise(image: Image.Image, degrees: float) -> Image.Image:
    return image.rotate(-degrees, expand=True, resample=Image.Resampling.BICUBIC)


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize(
    ("text", "degrees"),
    [("90", 90), ("180", 180), ("270", 270), ("-90", -90), ("45", 45), ("", 90), ("450", 450), ("0", 0)],
)
def test_rotate_gives_what_pillow_gives_in_the_same_format(
    task: Task, name: str, text: str, degrees: float
) -> None:
    data, mime_type = IMAGES[name]
    out, out_type, path = image_task(task, data, mime_type, "rotation", text).run(ImageRotate())
    expected = pillow_rotated_clockwise(decoded(data), degrees)
    result = decoded(out)
    assert out_type == mime_type
    assert result.format == {"image/png": "PNG", "image/jpeg": "JPEG"}[mime_type]
    assert path.suffix == {"image/png": ".png", "image/jpeg": ".jpg"}[mime_type]
    if mime_type == "image/jpeg":
        expected = decoded(encoded(expected, "JPEG", quality=JPEG_QUALITY))
    assert (result.mode, result.size) == (expected.mode, expected.size)
    assert result.tobytes() == expected.tobytes()


def test_rotation_is_clockwise_and_quarter_turns_lose_no_pixel(task: Task) -> None:
    original = decoded(PNG_RGBA)
    width, height = original.size
    out, _, _ = image_task(task, PNG_RGBA, "image/png", "rotation", "90").run(ImageRotate())
    result = decoded(out)
    assert result.size == (height, width)
    # Clockwise: the top-left corner goes to the top right, the bottom-left to the top left.
    assert result.getpixel((height - 1, 0)) == original.getpixel((0, 0))
    assert result.getpixel((0, 0)) == original.getpixel((0, height - 1))
    assert pixels(result) == pixels(original)


def test_an_odd_angle_grows_the_canvas_and_keeps_transparency_outside_the_image(task: Task) -> None:
    out, _, _ = image_task(task, PNG_RGBA, "image/png", "rotation", "30").run(ImageRotate())
    result = decoded(out)
    width, height = asymmetric("RGBA").size
    assert result.width > width
    assert result.height > height
    assert result.getpixel((0, 0)) == (0, 0, 0, 0)


def test_a_jpeg_is_turned_upright_by_its_exif_orientation_and_leaves_without_exif(task: Task) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise
    exif[0x010F] = "Camera maker"
    data = encoded(asymmetric("RGB"), "JPEG", quality=85, exif=exif)
    out, _, _ = image_task(task, data, "image/jpeg", "rotation", "0").run(ImageRotate())
    upright = decoded(data).transpose(Image.Transpose.ROTATE_270)
    expected = decoded(encoded(upright, "JPEG", quality=JPEG_QUALITY))
    result = decoded(out)
    assert result.tobytes() == expected.tobytes()
    assert "exif" not in result.info
    assert len(result.getexif()) == 0


@pytest.mark.parametrize("text", ["ninety", "90deg", "1/2", "nan", "inf", "-Infinity"])
def test_a_rotation_that_is_not_a_finite_number_is_refused_naming_the_field_and_value(
    task: Task, text: str
) -> None:
    message = refused(ImageRotate(), image_task(task, PNG_RGB, "image/png", "rotation", text))
    assert message.startswith("rotation: ")
    assert repr(text) in message


def test_a_long_rotation_value_is_cut_short_in_the_message(task: Task) -> None:
    message = refused(ImageRotate(), image_task(task, PNG_RGB, "image/png", "rotation", "9" * 500 + "x"))
    assert message.startswith("rotation: '9999")
    assert "…" in message
    assert len(message) < 120


def test_a_rotation_that_is_not_utf8_or_too_long_is_refused(tmp_path: Path) -> None:
    for number, data in enumerate([b"\xff\xfe9\x00", b"9" * 5000]):
        (tmp_path / str(number)).mkdir()
        task = Task(tmp_path / str(number))
        task.add("image", PNG_RGB, "image/png")
        task.add("rotation", data, "text/plain")
        assert refused(ImageRotate(), task).startswith("rotation: ")


def test_a_missing_input_is_refused_naming_its_field(task: Task) -> None:
    task.add("image", PNG_RGB, "image/png")
    assert refused(ImageRotate(), task).startswith("rotation: no input")


@pytest.mark.parametrize(
    ("data", "mime_type", "said"),
    [
        (b"not an image at all", "image/png", "not a PNG or JPEG image"),
        (PNG_RGB, "image/jpeg", "the content is PNG, but"),
        (JPEG, "image/png", "the content is JPEG, but"),
        (encoded(asymmetric("RGB"), "GIF"), "image/png", "not a PNG or JPEG image"),
        (PNG_RGB[: len(PNG_RGB) // 2], "image/png", "damaged PNG data"),
        (JPEG[:200], "image/jpeg", "damaged JPEG data"),
        (PNG_RGB, "text/plain", "text/plain is not an image type"),
    ],
)
def test_an_image_pillow_cannot_open_as_its_declared_type_is_refused_naming_the_field(
    task: Task, data: bytes, mime_type: MimeType, said: str
) -> None:
    message = refused(ImageRotate(), image_task(task, data, mime_type, "rotation", "90"))
    assert message.startswith("image: ")
    assert said in message


@pytest.mark.parametrize("size", [(11, 10), (20, 20)], ids=["over-the-limit", "over-twice-the-limit"])
def test_a_decompression_bomb_is_refused_naming_the_field(
    task: Task, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    data = encoded(asymmetric("RGB", size), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    message = refused(ImageRotate(), image_task(task, data, "image/png", "rotation", "90"))
    assert message.startswith("image: refused: ")
    assert "decompression bomb" in message


# --- image-resize -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", IMAGES)
@pytest.mark.parametrize(
    ("text", "size"),
    [("20x10", (20, 10)), ("20x", (20, 12)), ("x46", (74, 46)), ("1x1", (1, 1)), ("100 X 5", (100, 5))],
)
def test_resize_gives_what_pillow_gives_in_the_same_format(
    task: Task, name: str, text: str, size: tuple[int, int]
) -> None:
    data, mime_type = IMAGES[name]
    out, out_type, _ = image_task(task, data, mime_type, "size", text).run(ImageResize())
    expected = decoded(data).resize(size, Image.Resampling.LANCZOS)
    if mime_type == "image/jpeg":
        expected = decoded(encoded(expected, "JPEG", quality=JPEG_QUALITY))
    result = decoded(out)
    assert out_type == mime_type
    assert result.size == size
    assert result.mode == expected.mode
    assert result.tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "is not WIDTHxHEIGHT"),
        ("x", "gives neither a width nor a height"),
        ("640", "is not WIDTHxHEIGHT"),
        ("10x10x10", "is not WIDTHxHEIGHT"),
        ("-5x10", "is not WIDTHxHEIGHT"),
        ("1.5x2", "is not WIDTHxHEIGHT"),
        ("0x10", "the width 0 is not between 1 and 20000"),
        ("10x20001", "the height 20001 is not between 1 and 20000"),
    ],
)
def test_a_bad_size_is_refused_naming_the_field(task: Task, text: str, said: str) -> None:
    message = refused(ImageResize(), image_task(task, PNG_RGB, "image/png", "size", text))
    assert message.startswith("size: ")
    assert said in message


def test_a_size_over_the_pixel_limit_is_refused_before_resizing(
    task: Task, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    message = refused(ImageResize(), image_task(task, PNG_RGB, "image/png", "size", "100x100"))
    assert message == "size: 100x100 is more than the limit of 2000 pixels"


# --- csv-profile ------------------------------------------------------------------------------------------

CITIES = ["Bern", "Zürich", "Genève", "Lugano", "Chur", "Sion", "Biel/Bienne"]
QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95]


def weather_rows(count: int) -> list[dict[str, str]]:
    rng = random.Random(7)
    start = datetime(2024, 1, 1, 6, 0)
    rows = []
    for index in range(count):
        rows.append(
            {
                "station": str(index + 1),
                "city": "" if index % 11 == 3 else rng.choice(CITIES[: 1 + index % len(CITIES)]),
                "temperature": "" if index % 13 == 5 else f"{rng.uniform(-15, 35):.3f}",
                "day": "" if index % 17 == 2 else str(date(2024, 1, 1) + timedelta(days=rng.randrange(366))),
                "seen_at": (start + timedelta(minutes=37 * index)).isoformat(),
                "dry": rng.choice(["true", "false", ""]),
                # Numbers for the first thousands of rows, then a word: only a scan of every row sees it.
                "code": "n/a" if index == count - 2 else str(rng.randrange(1000)),
            }
        )
    return rows


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode()


def strict_json(data: bytes) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(data, parse_constant=refuse)


def present(rows: list[dict[str, str]], column: str) -> list[str]:
    return [row[column] for row in rows if row[column] != ""]


def by_name(profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {column["name"]: column for column in profile["columns"]}


def test_csv_profile_matches_numbers_computed_independently(task: Task) -> None:
    rows = weather_rows(4000)
    task.add("dataset", csv_bytes(rows), "text/csv")
    out, out_type, path = task.run(CsvProfile())
    assert (out_type, path.suffix) == ("application/json", ".json")
    profile = strict_json(out)
    columns = by_name(profile)
    assert profile["rows"] == len(rows)
    assert list(columns) == list(rows[0])

    types = {name: column["type"] for name, column in columns.items()}
    assert types["station"] == "Int64"
    assert types["temperature"] == "Float64"
    assert types["city"] == types["code"] == "String"
    assert types["day"] == "Date"
    assert types["seen_at"].startswith("Datetime")
    assert types["dry"] == "Boolean"

    for name, column in columns.items():
        values = present(rows, name)
        assert column["count"] == len(values), name
        assert column["null_count"] == len(rows) - len(values), name
        assert column["distinct"] == len(set(values)), name

    temperatures = [float(value) for value in present(rows, "temperature")]
    temperature = columns["temperature"]
    assert temperature["min"] == min(temperatures)
    assert temperature["max"] == max(temperatures)
    assert temperature["mean"] == pytest.approx(statistics.fmean(temperatures), rel=1e-12)
    assert temperature["std"] == pytest.approx(statistics.stdev(temperatures), rel=1e-12)
    expected_quantiles = np.quantile(temperatures, QUANTILES)
    assert list(temperature["quantiles"]) == [str(q) for q in QUANTILES]
    assert list(temperature["quantiles"].values()) == pytest.approx(list(expected_quantiles), rel=1e-12)

    stations = list(range(1, len(rows) + 1))
    assert (columns["station"]["min"], columns["station"]["max"]) == (1, len(rows))
    assert columns["station"]["mean"] == pytest.approx(statistics.fmean(stations))
    assert columns["station"]["quantiles"]["0.5"] == pytest.approx(float(np.median(stations)))

    cities = present(rows, "city")
    city = columns["city"]
    assert (city["min_length"], city["max_length"]) == (min(map(len, cities)), max(map(len, cities)))
    counted = sorted(Counter(cities).items(), key=lambda item: (-item[1], item[0]))[:5]
    assert city["top_values"] == [{"value": value, "count": count} for value, count in counted]
    assert "mean" not in city

    flags = Counter(present(rows, "dry"))
    assert columns["dry"]["top_values"] == [
        {"value": value == "true", "count": count}
        for value, count in sorted(flags.items(), key=lambda item: (-item[1], item[0]))
    ]

    days = present(rows, "day")
    assert (columns["day"]["min"], columns["day"]["max"]) == (min(days), max(days))
    times = present(rows, "seen_at")
    assert (columns["seen_at"]["min"], columns["seen_at"]["max"]) == (min(times), max(times))
    assert "quantiles" not in columns["day"]


def test_a_value_that_contradicts_the_sampled_type_far_down_lets_every_row_decide(tmp_path: Path) -> None:
    rows = [f"{n},{n},2024-01-{1 + n % 28:02d}" for n in range(SAMPLE_ROWS + 500)]
    rows[-1] = "n/a,2.5,not a date"
    path = tmp_path / "late.csv"
    path.write_text("code,amount,day\n" + "\n".join(rows) + "\n")
    code, amount, day = profile_csv(path)["columns"]
    assert (code["type"], code["count"], code["max_length"]) == ("String", len(rows), 5)
    assert (amount["type"], amount["max"]) == ("Float64", SAMPLE_ROWS + 498)
    days = Counter(row.split(",")[2] for row in rows)
    assert day["type"] == "String"
    assert day["top_values"][0] == {"value": "2024-01-01", "count": days["2024-01-01"]}


def test_not_a_number_and_infinities_become_null_and_the_json_stays_valid(task: Task) -> None:
    task.add("dataset", b"reading\n1.5\ninf\n2.5\n-inf\n", "text/csv")
    reading = by_name(strict_json(task.run(CsvProfile())[0]))["reading"]
    assert (reading["min"], reading["max"], reading["mean"], reading["std"]) == (None, None, None, None)
    assert reading["quantiles"]["0.5"] == pytest.approx(2.0)
    assert reading["quantiles"]["0.05"] is None
    assert reading["count"] == 4


def test_columns_named_like_the_profiles_own_keys_are_profiled_as_themselves(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("rows,column 0,count\n1,a,x\n2,b,y\n3,c,y\n")
    profile = profile_csv(path)
    assert profile["rows"] == 3
    rows, column_0, count = profile["columns"]
    assert (rows["name"], rows["max"]) == ("rows", 3)
    assert (column_0["name"], column_0["distinct"]) == ("column 0", 3)
    assert (count["name"], count["top_values"][0]) == ("count", {"value": "y", "count": 2})


def test_a_csv_with_a_header_only_has_no_rows_and_no_numbers(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("a,b\n")
    profile = profile_csv(path)
    assert profile["rows"] == 0
    assert [(column["name"], column["count"], column["null_count"]) for column in profile["columns"]] == [
        ("a", 0, 0),
        ("b", 0, 0),
    ]


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "dataset: the CSV is empty"),
        (b"a,b\n1,2\n3,4,5\n", "dataset: polars cannot read it as CSV: found more fields than defined"),
        (b"a\nok\n\xff\xfe\n", "dataset: polars cannot read it as CSV: invalid utf-8"),
    ],
)
def test_a_csv_polars_cannot_read_is_refused_naming_the_field(task: Task, data: bytes, said: str) -> None:
    task.add("dataset", data, "text/csv")
    assert refused(CsvProfile(), task).startswith(said)


# --- registration -----------------------------------------------------------------------------------------

REGISTRATION_FIELDS = {
    "name",
    "slug",
    "url",
    "summary",
    "description",
    "status",
    "data_in_fields",
    "data_out_fields",
    "tags",
    "has_ai",
    "docs_url",
}


@pytest.mark.parametrize(
    ("service", "fields_in", "fields_out"),
    [
        (ImageRotate(), ["image", "rotation"], ["result"]),
        (ImageResize(), ["image", "size"], ["result"]),
        (CsvProfile(), ["dataset"], ["profile"]),
    ],
)
def test_registration_speaks_the_protocol(
    service: ComputeService, fields_in: list[str], fields_out: list[str]
) -> None:
    registration = service.info.registration("http://x/")
    assert isinstance(registration, ServiceRegistration)
    body = json.loads(registration.model_dump_json())
    assert set(body) == REGISTRATION_FIELDS
    assert body["url"] == "http://x"
    assert body["status"] == "available"
    assert [field["name"] for field in body["data_in_fields"]] == fields_in
    assert [field["name"] for field in body["data_out_fields"]] == fields_out
    for field in body["data_in_fields"] + body["data_out_fields"]:
        assert set(field) == {"name", "type", "format_hint"}
        assert set(field["type"]) <= set(MIME_TYPES)
    assert body["tags"]
    assert {(tag["name"], tag["acronym"]) for tag in body["tags"]} <= CORE_TAGS


# --- discovery --------------------------------------------------------------------------------------------

ECHO_MODULE = """
from pathlib import Path
from headwater_worker.compute.protocol import FieldDescription
from headwater_worker.compute.services import ServiceInfo, TaskOutput


def info(slug):
    field = FieldDescription(name="text", type=["text/plain"])
    return ServiceInfo(name=slug, slug=slug, summary="s", description="d",
                       data_in_fields=(field,), data_out_fields=(field,))


class Upper:
    info = info("shout")

    def process(self, inputs, workdir):
        path = Path(workdir) / "text.txt"
        path.write_text(inputs[0].path.read_text().upper())
        return [TaskOutput(field="text", mime_type="text/plain", path=path)]


class Misnamed(Upper):
    info = info("something-else")


class Infoless:
    def process(self, inputs, workdir):
        return []


def failing():
    raise RuntimeError("needs a GPU\\nthat is not there")
"""


Installer = Callable[[str, dict[str, str], dict[str, str]], None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Installer:
    """Installs a distribution the way pip leaves one on sys.path: its modules, and a dist-info directory
    whose entry_points.txt importlib.metadata reads."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def installer(distribution: str, points: dict[str, str], modules: dict[str, str]) -> None:
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            monkeypatch.delitem(sys.modules, module, raising=False)
        info = site / f"{distribution}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
        lines = "".join(f"{name} = {value}\n" for name, value in points.items())
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")

    return installer


def test_pyproject_registers_exactly_the_built_ins_each_under_its_own_slug() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert set(declared) == BUILT_INS
    for slug, value in declared.items():
        service = load(EntryPoint(name=slug, value=value, group=ENTRY_POINT_GROUP))
        assert service.info.slug == slug


def test_a_third_party_plugin_is_discovered_and_runs(install: Installer, task: Task) -> None:
    install("shouting-plugin", {"shout": "shouting_plugin:Upper"}, {"shouting_plugin": ECHO_MODULE})
    found = discover()
    assert "shout" in found.services
    assert found.broken == {}
    task.add("text", b"quiet please", "text/plain")
    assert task.run(service_named("shout"))[0] == b"QUIET PLEASE"


def test_broken_plugins_are_set_aside_each_with_a_line_naming_its_entry_point(install: Installer) -> None:
    install(
        "mixed-plugins",
        {
            "shout": "mixed_plugins:Upper",
            "gone": "no_such_module_anywhere:Service",
            "misnamed": "mixed_plugins:Misnamed",
            "infoless": "mixed_plugins:Infoless",
            "failing": "mixed_plugins:failing",
            "typo": "mixed_plugins:Uper",
        },
        {"mixed_plugins": ECHO_MODULE},
    )
    found = discover()
    assert "shout" in found.services
    broken = found.broken
    assert set(broken) == {"gone", "misnamed", "infoless", "failing", "typo"}
    for name, message in broken.items():
        assert message.startswith(f"entry point {name!r} ("), message
        assert "\n" not in message
    assert "ModuleNotFoundError: No module named 'no_such_module_anywhere'" in broken["gone"]
    assert "its info.slug is 'something-else', not the entry point's name" in broken["misnamed"]
    assert "no `info` of type ServiceInfo" in broken["infoless"]
    assert broken["failing"].endswith("RuntimeError: needs a GPU that is not there")
    assert "AttributeError" in broken["typo"]
    assert service_named("shout").info.slug == "shout"


def test_two_distributions_claiming_one_slug_leave_it_unavailable(install: Installer) -> None:
    install("first-plugin", {"shout": "first_plugin:Upper"}, {"first_plugin": ECHO_MODULE})
    install("second-plugin", {"shout": "second_plugin:Upper"}, {"second_plugin": ECHO_MODULE})
    found = discover()
    assert "shout" not in found.services
    assert found.broken["shout"] == (
        "entry point 'shout' is published by more than one distribution: "
        "first-plugin (first_plugin:Upper), second-plugin (second_plugin:Upper)"
    )


def test_an_unknown_slug_is_refused_listing_the_installed_ones(install: Installer) -> None:
    install("shouting-plugin", {"shout": "shouting_plugin:Upper"}, {"shouting_plugin": ECHO_MODULE})
    with pytest.raises(UnknownServiceError) as caught:
        service_named("image-rotat")
    message = str(caught.value)
    assert message.startswith("no compute service is named 'image-rotat'; installed: ")
    assert "shout" in message.split("installed: ")[1].split(", ")


def test_asking_for_a_broken_plugin_says_why_it_is_broken(install: Installer) -> None:
    install("mixed-plugins", {"misnamed": "misnamed_plugin:Misnamed"}, {"misnamed_plugin": ECHO_MODULE})
    with pytest.raises(UnknownServiceError) as caught:
        service_named("misnamed")
    assert str(caught.value).startswith("compute service 'misnamed' is installed but broken: entry point")
