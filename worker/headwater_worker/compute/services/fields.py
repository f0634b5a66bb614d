"""What every service does with its inputs: find one by field name, read a small text parameter, quote a
user's value in an error without letting it grow the message."""

from __future__ import annotations

from collections.abc import Sequence

from . import ServiceError, TaskInput

PARAMETER_LIMIT = 1024  # bytes; a text/plain parameter is a number or a short spec, never a document
SHOWN_LIMIT = 40


def input_for(inputs: Sequence[TaskInput], field: str) -> TaskInput:
    for given in inputs:
        if given.field == field:
            return given
    raise ServiceError(f"{field}: no input was given for this field")


def text_parameter(given: TaskInput) -> str:
    """The parameter's text, stripped of surrounding whitespace (and of a byte order mark)."""
    with given.path.open("rb") as stream:
        raw = stream.read(PARAMETER_LIMIT + 1)
    if len(raw) > PARAMETER_LIMIT:
        raise ServiceError(f"{given.field}: more than {PARAMETER_LIMIT} bytes for a text parameter")
    try:
        return raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError as error:
        raise ServiceError(f"{given.field}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def shown(value: str) -> str:
    """A user's value, quoted and cut short enough for a one-line message."""
    if len(value) > SHOWN_LIMIT:
        value = value[:SHOWN_LIMIT] + "…"
    return repr(value)
