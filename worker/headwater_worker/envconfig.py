"""A command's configuration: one JSON variable of the environment, read into its model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class InvalidEnvironment(Exception):  # noqa: N818 - it names the condition, as the commands report it
    """The variable is missing, or its JSON does not fit the model: the message says where."""


def config_from_env(model: type[Model], name: str, env: Mapping[str, str]) -> Model:
    raw = env.get(name)
    if not raw:
        raise InvalidEnvironment(f"{name} is not set")
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(root)'}: {item['msg']}"
            for item in error.errors()
        )
        raise InvalidEnvironment(f"invalid {name}: {problems}") from None
