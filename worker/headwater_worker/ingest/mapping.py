"""YAML dataset mappings, in the ingestor's format, and the model that refuses an invalid one.

A mapping says how source records become rows of a final table::

    dataset: energy_hourly
    granularity: hourly
    columns:                      # source column or JSON field -> database column
      "Date and Time": ts
      "Hourly": energy_kwh
    coercions:                    # database column -> type (or {type, format, timezone})
      ts: datetime
      energy_kwh: float
    validation_rules:
      schema:
        required: [ts, energy_kwh]
      constraints:
        energy_kwh: {min: 0, max: 10000}
    conflict_resolution:
      strategy: update            # update | ignore | fail | append
      on_columns: [device_id, ts]
      update_columns: [energy_kwh]
    target_table: fact_energy_hourly
    staging_table: staging_energy_hourly

`device_id` (the batch's datasource) and `source_file` (the batch) are filled by the pipeline and may be
named in keys without being mapped (`datasource_id` and `source_batch_id`, their earlier names, are read
as them). `primary_key` (the seed's) names the table's key.

A mapping may declare its tables, which Headwater then creates, or extends with new nullable columns,
before loading (a change that would lose data is refused, naming the column)::

    table:
      columns:                    # database column -> SQL type; unlisted ones follow their coercion
        temperature: numeric(6,2)
        notes: {type: text}
      indexes:
        - [created_at]

Optional keys beyond the seed's: `timezone` (how naive timestamps are read; default UTC), `day_first`
(`01/02/2024` is 1 February; default true), `decimal` (`auto`, `comma` or `dot`), `csv` (`delimiter`,
`encoding`) and `source` (hints for API connectors, such as the Tago variable to fetch).

Every problem is reported with the key it is about (`coercions.ts: unknown type 'datetimez'`).
"""

from __future__ import annotations

import os
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from . import statements

MAPPINGS_DIR_ENV = "HEADWATER_MAPPINGS_DIR"
IMAGE_MAPPINGS_DIR = Path("/opt/headwater/mappings")
NAME_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"
IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"

CoercionType = Literal["datetime", "date", "float", "int", "str", "bool"]
COERCION_TYPES: tuple[str, ...] = ("datetime", "date", "float", "int", "str", "bool")
Strategy = Literal["update", "ignore", "fail", "append"]
STRATEGIES: tuple[str, ...] = ("update", "ignore", "fail", "append")
# Columns the pipeline fills itself, usable in `on_columns` without being mapped.
INJECTED_COLUMNS = statements.INJECTED
# Earlier names of the injected columns, read as the current ones.
RENAMED_COLUMNS = {"datasource_id": statements.DEVICE, "source_batch_id": statements.BATCH}

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]


class MappingError(ValueError):
    """A mapping that cannot be used; the message names the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coercion(_Model):
    type: CoercionType
    format: str | None = Field(default=None, description="strptime format tried before the usual ones")
    timezone: str | None = Field(
        default=None, description="zone of naive timestamps; overrides the mapping's"
    )


class Constraint(_Model):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class SchemaRules(_Model):
    required: list[Identifier] = Field(default_factory=list)


class ValidationRules(_Model):
    schema_: SchemaRules = Field(default_factory=SchemaRules, alias="schema")
    constraints: dict[Identifier, Constraint] = Field(default_factory=dict)


class ConflictResolution(_Model):
    strategy: Strategy = "update"
    on_columns: list[Identifier] = Field(default_factory=list)
    update_columns: list[Identifier] = Field(default_factory=list)


class ColumnDeclaration(_Model):
    type: str = Field(description="SQL type: text, integer, bigint, double precision, numeric(p,s), ...")
    nullable: bool = True

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        return statements.canonical_type(value)


class TableDeclaration(_Model):
    """The final table of a dataset of one's own; its staging table follows (see `statements`)."""

    columns: dict[Identifier, ColumnDeclaration] = Field(default_factory=dict)
    indexes: list[Annotated[list[Identifier], Field(min_length=1)]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _short_types(cls, data: Any) -> Any:
        """`temperature: numeric(6,2)` is short for `temperature: {type: numeric(6,2)}`."""
        if isinstance(data, dict) and isinstance(data.get("columns"), dict):
            data = dict(data)
            data["columns"] = {
                key: {"type": value} if isinstance(value, str) else value
                for key, value in data["columns"].items()
            }
        return data


class CsvOptions(_Model):
    delimiter: Annotated[str, StringConstraints(min_length=1, max_length=1)] | None = Field(
        default=None, description="field separator; absent: guessed from the header"
    )
    encoding: Literal["auto", "utf-8", "latin-1"] = "auto"


class Mapping(_Model):
    """One dataset mapping; `Mapping.parse(text)` refuses an invalid one with a `MappingError`."""

    dataset: Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    granularity: str | None = None
    description: str | None = None
    columns: dict[Annotated[str, StringConstraints(min_length=1)], Identifier] = Field(min_length=1)
    coercions: dict[Identifier, Coercion] = Field(default_factory=dict)
    validation_rules: ValidationRules = Field(default_factory=ValidationRules)
    conflict_resolution: ConflictResolution = Field(default_factory=ConflictResolution)
    primary_key: list[Identifier] = Field(default_factory=list, description="the final table's key")
    table: TableDeclaration | None = Field(default=None, description="tables Headwater creates and extends")
    target_table: Identifier
    staging_table: Identifier
    timezone: str = "UTC"
    day_first: bool = True
    decimal: Literal["auto", "comma", "dot"] = "auto"
    csv: CsvOptions = Field(default_factory=CsvOptions)
    source: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _short_coercions(cls, data: Any) -> Any:
        """`ts: datetime` is short for `ts: {type: datetime}`; injected columns' earlier names are read as
        their current ones."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("coercions"), dict):
            data["coercions"] = {
                key: {"type": value} if isinstance(value, str) else value
                for key, value in data["coercions"].items()
            }
        if isinstance(data.get("primary_key"), list):
            data["primary_key"] = [RENAMED_COLUMNS.get(c, c) for c in data["primary_key"]]
        conflict = data.get("conflict_resolution")
        if isinstance(conflict, dict) and isinstance(conflict.get("on_columns"), list):
            data["conflict_resolution"] = {
                **conflict,
                "on_columns": [RENAMED_COLUMNS.get(c, c) for c in conflict["on_columns"]],
            }
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        mapped = list(self.columns.values())
        duplicates = sorted({c for c in mapped if mapped.count(c) > 1})
        if duplicates:
            raise MappingError(f"columns: database column mapped twice: {', '.join(duplicates)}")
        known = set(mapped)
        for reserved in INJECTED_COLUMNS:
            if reserved in known:
                raise MappingError(f"columns: {reserved!r} is filled by the pipeline and cannot be mapped")
        checks: list[tuple[str, list[str], set[str]]] = [
            ("coercions", list(self.coercions), known),
            ("validation_rules.schema.required", self.validation_rules.schema_.required, known),
            ("validation_rules.constraints", list(self.validation_rules.constraints), known),
            ("conflict_resolution.update_columns", self.conflict_resolution.update_columns, known),
            (
                "conflict_resolution.on_columns",
                self.conflict_resolution.on_columns,
                known | set(INJECTED_COLUMNS),
            ),
            ("primary_key", self.primary_key, known | set(INJECTED_COLUMNS)),
        ]
        if self.table is not None:
            checks += [
                ("table.columns", list(self.table.columns), known),
                *(
                    (f"table.indexes.{n}", index, known | set(INJECTED_COLUMNS) | {statements.WRITTEN_AT})
                    for n, index in enumerate(self.table.indexes)
                ),
            ]
        for key, names, allowed in checks:
            unknown = [name for name in names if name not in allowed]
            if unknown:
                raise MappingError(f"{key}: not among the mapped columns: {', '.join(unknown)}")
        for name, constraint in self.validation_rules.constraints.items():
            kind = self.coercions[name].type if name in self.coercions else "str"
            if kind not in ("float", "int") and (constraint.min is not None or constraint.max is not None):
                raise MappingError(
                    f"validation_rules.constraints.{name}: min/max need a float or int coercion"
                )
        conflict = self.conflict_resolution
        if conflict.strategy in ("update", "ignore", "fail") and not conflict.on_columns:
            raise MappingError(f"conflict_resolution.on_columns: required by strategy {conflict.strategy!r}")
        if conflict.strategy == "update" and not conflict.update_columns:
            raise MappingError("conflict_resolution.update_columns: required by strategy 'update'")
        overlap = set(conflict.update_columns) & set(conflict.on_columns)
        if overlap:
            raise MappingError(
                f"conflict_resolution.update_columns: cannot update key columns {', '.join(sorted(overlap))}"
            )
        if self.table is not None:
            self._check_declared_table()
        if self.target_table == self.staging_table:
            raise MappingError("staging_table: must differ from target_table")
        for key, zone in [("timezone", self.timezone)] + [
            (f"coercions.{name}.timezone", c.timezone) for name, c in self.coercions.items() if c.timezone
        ]:
            if not _valid_zone(zone):
                raise MappingError(f"{key}: unknown time zone {zone!r}")
        return self

    def _check_declared_table(self) -> None:
        assert self.table is not None
        for name, column in self.table.columns.items():
            coercion = self.coercion(name).type
            if not statements.takes(column.type, coercion):
                raise MappingError(
                    f"table.columns.{name}: a {column.type} column cannot hold {coercion} values "
                    f"(coercions.{name})"
                )
        on_columns = self.conflict_resolution.on_columns
        if self.primary_key and on_columns and set(on_columns) != set(self.primary_key):
            raise MappingError(
                "conflict_resolution.on_columns: must be the declared table's primary_key "
                f"({', '.join(self.primary_key)})"
            )

    # -- derived ----------------------------------------------------------------------------------------

    @property
    def key(self) -> list[str]:
        """The final table's key as the mapping declares it."""
        return self.primary_key or self.conflict_resolution.on_columns

    def table_spec(self) -> statements.TableSpec | None:
        """The tables the mapping declares, or None when it uses tables that exist."""
        if self.table is None:
            return None
        declared = self.table.columns
        columns = []
        for name in self.db_columns:
            natural = statements.DEFAULT_TYPES[self.coercion(name).type]
            column = declared.get(name)
            columns.append(
                statements.ColumnSpec(name, column.type, column.nullable, natural)
                if column is not None
                else statements.ColumnSpec(name, natural)
            )
        return statements.TableSpec(
            name=self.target_table,
            staging=self.staging_table,
            columns=tuple(columns),
            key=tuple(self.key),
            indexes=tuple(tuple(index) for index in self.table.indexes),
        )

    @property
    def db_columns(self) -> list[str]:
        return list(self.columns.values())

    def coercion(self, column: str) -> Coercion:
        return self.coercions.get(column, Coercion(type="str"))

    @property
    def required(self) -> list[str]:
        return self.validation_rules.schema_.required

    def source_of(self, column: str) -> str:
        return next(source for source, target in self.columns.items() if target == column)

    # -- loading ----------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str | bytes, *, origin: str = "mapping") -> Mapping:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise MappingError(f"{origin}: not valid YAML: {error}") from None
        if not isinstance(data, dict):
            raise MappingError(f"{origin}: a mapping is a YAML object with keys dataset, columns, ...")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise MappingError(f"{origin}: {describe(error)}") from None
        except MappingError as error:
            raise MappingError(f"{origin}: {error}") from None

    @classmethod
    def load(cls, path: Path) -> Mapping:
        try:
            text = path.read_bytes()
        except OSError as error:
            raise MappingError(f"cannot read mapping {path}: {error.strerror}") from None
        return cls.parse(text, origin=path.name)


def _valid_zone(name: str) -> bool:
    if name.upper() == "UTC":
        return True
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def describe(error: ValidationError) -> str:
    """Pydantic's errors as `key.path: message`, with the seed's key names."""
    problems = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "(root)"
        message = item["msg"]
        if item["type"] == "literal_error":
            message = f"{message}, got {item['input']!r}"
        elif item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key missing"
        message = re.sub(r"^(Value error|Assertion failed), ", "", message)
        problems.append(message if loc == "(root)" else f"{loc}: {message}")
    return "; ".join(problems)


def mappings_dir(env: dict[str, str] | None = None) -> Path:
    """`HEADWATER_MAPPINGS_DIR`; else the image's folder; else the repository's `mappings/` (development)."""
    environ = os.environ if env is None else env
    configured = environ.get(MAPPINGS_DIR_ENV)
    if configured:
        return Path(configured)
    if IMAGE_MAPPINGS_DIR.is_dir():
        return IMAGE_MAPPINGS_DIR
    return Path(__file__).resolve().parents[3] / "mappings"


def shipped(name: str, env: dict[str, str] | None = None) -> Mapping:
    """A mapping shipped with Headwater, by name (`energy_hourly`)."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise MappingError(f"invalid mapping name {name!r}")
    folder = mappings_dir(env)
    path = folder / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in folder.glob("*.yaml"))
        raise MappingError(f"no mapping named {name!r} (available: {', '.join(available) or 'none'})")
    return Mapping.load(path)


__all__ = [
    "COERCION_TYPES",
    "INJECTED_COLUMNS",
    "MAPPINGS_DIR_ENV",
    "RENAMED_COLUMNS",
    "STRATEGIES",
    "Coercion",
    "ColumnDeclaration",
    "ConflictResolution",
    "Mapping",
    "MappingError",
    "TableDeclaration",
    "mappings_dir",
    "shipped",
]
