"""The SQL of one mapping's tables: a table's shape in, statements out. Nothing here talks to PostgreSQL.

Two kinds of statement live here:

- **definitions**: the final and staging tables a mapping declares (`table:`), and the additive changes
  that bring an existing pair of tables to a newer declaration, or the refusal of a change that would
  lose data (a narrowed type, a dropped column, a changed key);
- **loading**: how a batch's rows reach the final table: `COPY` targets, the `ON CONFLICT` clause of the
  mapping's strategy, the incoming table, the key-range condition a primary key answers with one scan.

Every final table carries three columns the pipeline fills: `device_id` (the batch's datasource, as the
seed's tables name it), `source_file` (the batch) and the time the row was written (`created_at`; the
seed's dairy table calls it `ingested_at`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from psycopg import sql

DEVICE = "device_id"
BATCH = "source_file"
WRITTEN_AT = "created_at"
# Names the time a row was written goes by, in the order they are looked for.
WRITTEN_AT_NAMES = (WRITTEN_AT, "ingested_at")
INJECTED = (DEVICE, BATCH)
# Columns of every staging table besides the mapped ones.
STAGING_BOOKKEEPING = (
    "batch_id",
    "row_number",
    DEVICE,
    "raw",
    "errors",
    "valid",
    "loaded_to_final",
    "staged_at",
)
DATASOURCE_CHECK_STATEMENT = "headwater_datasource_check_statement"
DATASOURCE_CHECK_ROW = "headwater_datasource_check_row"


class SchemaChangeError(ValueError):
    """A declared table that cannot be reached from the existing one without losing data."""


# -- types ------------------------------------------------------------------------------------------------

# Spellings a mapping may use, to the name `format_type()` gives the type (what an existing table reports).
_ALIASES = {
    "text": "text",
    "int": "integer",
    "int4": "integer",
    "integer": "integer",
    "int8": "bigint",
    "bigint": "bigint",
    "int2": "smallint",
    "smallint": "smallint",
    "real": "real",
    "float4": "real",
    "float": "double precision",
    "float8": "double precision",
    "double precision": "double precision",
    "bool": "boolean",
    "boolean": "boolean",
    "date": "date",
    "timestamptz": "timestamp with time zone",
    "timestamp with time zone": "timestamp with time zone",
    "timestamp": "timestamp without time zone",
    "timestamp without time zone": "timestamp without time zone",
    "jsonb": "jsonb",
    "uuid": "uuid",
}
_NUMERIC = re.compile(r"^(?:numeric|decimal)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$")
_VARCHAR = re.compile(r"^(?:varchar|character varying)\s*(?:\(\s*(\d+)\s*\))?$")
# The SQL types each coercion's values can be written into.
_TAKES = {
    "datetime": ("timestamp with time zone", "timestamp without time zone"),
    "date": ("date",),
    "float": ("double precision", "real", "numeric"),
    "int": ("bigint", "integer", "smallint", "numeric", "double precision"),
    "str": ("text", "character varying"),
    "bool": ("boolean",),
}
# The type a mapped column gets when its declaration names none.
DEFAULT_TYPES = {
    "datetime": "timestamp with time zone",
    "date": "date",
    "float": "double precision",
    "int": "bigint",
    "str": "text",
    "bool": "boolean",
}
_INTEGER_WIDTH = {"smallint": 2, "integer": 4, "bigint": 8}


def canonical_type(spelling: str) -> str:
    """A type as `format_type()` names it (`numeric(8,2)`, `timestamp with time zone`), or ValueError."""
    text = " ".join(spelling.strip().lower().split())
    if text in _ALIASES:
        return _ALIASES[text]
    if match := _NUMERIC.match(text):
        precision, scale = match.groups()
        if precision is None:
            return "numeric"
        if not 1 <= int(precision) <= 1000 or int(scale or 0) > int(precision):
            raise ValueError(f"numeric precision and scale out of range: {spelling!r}")
        return f"numeric({int(precision)},{int(scale or 0)})"
    if match := _VARCHAR.match(text):
        return f"character varying({int(match.group(1))})" if match.group(1) else "character varying"
    known = ", ".join(sorted({*_ALIASES, "numeric(p,s)", "varchar(n)"}))
    raise ValueError(f"unknown type {spelling!r} (known: {known})")


def base_type(canonical: str) -> str:
    return canonical.split("(", 1)[0]


def takes(canonical: str, coercion: str) -> bool:
    """Whether a column of this type can hold values of this coercion."""
    return base_type(canonical) in _TAKES[coercion]


def widens(old: str, new: str) -> bool:
    """Whether every value of type `old` fits type `new` unchanged (so `ALTER ... TYPE` loses nothing)."""
    if old == new:
        return True
    if old in _INTEGER_WIDTH and new in _INTEGER_WIDTH:
        return _INTEGER_WIDTH[new] >= _INTEGER_WIDTH[old]
    if old in _INTEGER_WIDTH and new == "numeric":
        return True
    if (old, new) == ("real", "double precision"):
        return True
    if base_type(old) == "numeric" and base_type(new) == "numeric":
        if new == "numeric":
            return True
        if old == "numeric":
            return False
        (p_old, s_old), (p_new, s_new) = _precision(old), _precision(new)
        return s_new >= s_old and p_new - s_new >= p_old - s_old
    if base_type(old) == "character varying" and new in ("text", "character varying"):
        return True
    if base_type(old) == "character varying" and base_type(new) == "character varying":
        return _length(new) >= _length(old)
    return False


def _precision(numeric: str) -> tuple[int, int]:
    precision, scale = numeric[len("numeric(") : -1].split(",")
    return int(precision), int(scale)


def _length(varchar: str) -> int:
    return int(varchar[len("character varying(") : -1])


# -- shapes -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # canonical (`format_type()`) name
    nullable: bool = True
    # In staging: the type of the transformed values (a rejected row's value may not fit `type`).
    staging_type: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """A final table as a mapping declares it, and the name of its staging table."""

    name: str
    staging: str
    columns: tuple[ColumnSpec, ...]  # the mapped columns, in order
    key: tuple[str, ...]  # may include `device_id`
    indexes: tuple[tuple[str, ...], ...] = ()

    def final_columns(self) -> tuple[ColumnSpec, ...]:
        key = set(self.key)
        mapped = tuple(ColumnSpec(c.name, c.type, c.nullable and c.name not in key) for c in self.columns)
        return (
            ColumnSpec(DEVICE, "integer", False),
            *mapped,
            ColumnSpec(BATCH, "uuid", False),
            ColumnSpec(WRITTEN_AT, "timestamp with time zone", False),
        )

    def staging_columns(self) -> tuple[ColumnSpec, ...]:
        return (
            ColumnSpec("batch_id", "uuid", False),
            ColumnSpec("row_number", "bigint", False),
            ColumnSpec(DEVICE, "integer"),
            ColumnSpec("raw", "text[]", False),
            *(ColumnSpec(c.name, c.staging_type or c.type) for c in self.columns),
            ColumnSpec("errors", "jsonb", False),
            ColumnSpec("valid", "boolean", False),
            ColumnSpec("loaded_to_final", "boolean", False),
            ColumnSpec("staged_at", "timestamp with time zone", False),
        )


_DEFAULTS = {
    WRITTEN_AT: "now()",
    "staged_at": "now()",
    "errors": "'[]'::jsonb",
    "loaded_to_final": "false",
}


@dataclass(frozen=True)
class ExistingTable:
    """What the database holds of a table: its columns with their types, and its primary key."""

    columns: dict[str, str]  # name -> format_type() name
    key: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """The statements that bring a declared pair of tables into being, or up to date; empty when they are."""

    statements: list[sql.Composed] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # one readable line per change, for the log


def _column_definition(column: ColumnSpec) -> sql.Composed:
    parts: list[sql.Composable] = [sql.Identifier(column.name), sql.SQL(column.type)]
    if not column.nullable:
        parts.append(sql.SQL("NOT NULL"))
    if column.name in _DEFAULTS:
        parts.append(sql.SQL("DEFAULT " + _DEFAULTS[column.name]))
    return sql.SQL(" ").join(parts)


def _index_name(table: str, columns: Sequence[str], suffix: str = "") -> sql.Identifier:
    return sql.Identifier(f"ix_{table}_{'_'.join(columns)}{suffix}"[:63])


def create_statements(spec: TableSpec) -> list[sql.Composed]:
    """The final table (keyed, refering to `datasource` through the set-wise triggers of the schema), its
    indexes, and its UNLOGGED staging table with a BRIN index on the batch (see `schema.models`)."""
    final, staging = sql.Identifier(spec.name), sql.Identifier(spec.staging)
    columns = [_column_definition(c) for c in spec.final_columns()]
    if spec.key:
        columns.append(
            sql.SQL("CONSTRAINT {} PRIMARY KEY ({})").format(
                sql.Identifier(f"pk_{spec.name}"[:63]), ident(*spec.key)
            )
        )
    statements: list[sql.Composed] = [
        sql.SQL("CREATE TABLE {} ({})").format(final, sql.SQL(", ").join(columns)),
        *(
            sql.SQL("CREATE INDEX {} ON {} ({})").format(_index_name(spec.name, index), final, ident(*index))
            for index in spec.indexes
        ),
        *datasource_triggers(spec.name),
        sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(
            staging, sql.SQL(", ").join(_column_definition(c) for c in spec.staging_columns())
        ),
        sql.SQL("CREATE INDEX {} ON {} USING brin (batch_id)").format(
            _index_name(spec.staging, ["batch_id"]), staging
        ),
    ]
    return statements


def datasource_triggers(table: str) -> list[sql.Composed]:
    """The triggers that make a final table's `device_id` refer to `datasource.id` (see `schema.models`)."""
    name = sql.Identifier(table)
    return [
        sql.SQL(
            "CREATE TRIGGER {} AFTER INSERT ON {} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION {}()"
        ).format(
            sql.Identifier(f"{table}_datasource_insert"[:63]),
            name,
            sql.Identifier(DATASOURCE_CHECK_STATEMENT),
        ),
        sql.SQL(
            "CREATE TRIGGER {} AFTER UPDATE OF {} ON {} FOR EACH ROW "
            "WHEN (OLD.{} IS DISTINCT FROM NEW.{}) EXECUTE FUNCTION {}()"
        ).format(
            sql.Identifier(f"{table}_datasource_update"[:63]),
            sql.Identifier(DEVICE),
            name,
            sql.Identifier(DEVICE),
            sql.Identifier(DEVICE),
            sql.Identifier(DATASOURCE_CHECK_ROW),
        ),
    ]


def plan(spec: TableSpec, final: ExistingTable | None, staging: ExistingTable | None) -> Plan:
    """What to run so that the database holds `spec`: everything when neither table exists, else only
    additive changes (new nullable columns, widened types, new indexes). Raises `SchemaChangeError`, naming
    the table and column, for a change that would lose data or rewrite what exists."""
    if final is None and staging is None:
        return Plan(create_statements(spec), [f"create tables {spec.name} and {spec.staging}"])
    if final is None or staging is None:
        present, absent = (spec.staging, spec.name) if final is None else (spec.name, spec.staging)
        raise SchemaChangeError(
            f"table {present} exists but {absent} does not: Headwater creates a declared dataset's "
            "tables together; create the missing one or drop the other"
        )
    if tuple(final.key) != tuple(spec.key):
        raise SchemaChangeError(
            f"table {spec.name}: the declared key ({', '.join(spec.key) or 'none'}) differs from the "
            f"table's ({', '.join(final.key) or 'none'}); changing a key can merge or split rows, so "
            "Headwater never does it: migrate the table by hand or declare a new one"
        )
    declared = {c.name for c in spec.final_columns()} | set(WRITTEN_AT_NAMES)
    dropped = [name for name in final.columns if name not in declared]
    if dropped:
        raise SchemaChangeError(
            f"table {spec.name}: column {', '.join(dropped)} is not declared; Headwater never drops a "
            "column (its values would be lost): declare it again or drop it by hand"
        )
    result = Plan()
    for table, existing, wanted in (
        (spec.name, final, spec.final_columns()),
        (spec.staging, staging, spec.staging_columns()),
    ):
        for column in wanted:
            if column.name == WRITTEN_AT and any(n in existing.columns for n in WRITTEN_AT_NAMES):
                continue
            _extend(result, table, existing, column)
    for index in spec.indexes:
        # CREATE INDEX IF NOT EXISTS: an index by that name is left as it is.
        result.statements.append(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                _index_name(spec.name, index), sql.Identifier(spec.name), ident(*index)
            )
        )
    return result


def _extend(result: Plan, table: str, existing: ExistingTable, column: ColumnSpec) -> None:
    name = sql.Identifier(column.name)
    present = existing.columns.get(column.name)
    if present is None:
        result.statements.append(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                sql.Identifier(table), name, sql.SQL(column.type)
            )
        )
        result.changes.append(f"add column {table}.{column.name} {column.type}")
    elif present != column.type:
        if not widens(present, column.type):
            raise SchemaChangeError(
                f"table {table}: column {column.name} is {present}, declared {column.type}; only widening "
                "changes are made (values would not fit or would change): keep the type or migrate by hand"
            )
        result.statements.append(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
                sql.Identifier(table), name, sql.SQL(column.type)
            )
        )
        result.changes.append(f"widen column {table}.{column.name} from {present} to {column.type}")


# -- loading ----------------------------------------------------------------------------------------------


def ident(*names: str) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def conflict_key(on_columns: Sequence[str], table_key: Sequence[str]) -> tuple[str, ...]:
    """The conflict target of a mapping's `on_columns` on a table with this primary key.

    Headwater keys every shipped table by the device too, so that a second meter, station or herd never
    overwrites the first: a mapping written for a table of one device (`on_columns: [timestamp]`, as the
    seed's are) means the same on a table keyed `(device_id, timestamp)`. Raises ValueError when the
    columns are not the key either way (`ON CONFLICT` needs a unique index on exactly them)."""
    wanted = tuple(on_columns)
    if set(wanted) == set(table_key):
        return tuple(table_key)
    if DEVICE not in wanted and set(wanted) | {DEVICE} == set(table_key):
        return tuple(table_key)
    raise ValueError(
        f"conflict_resolution.on_columns ({', '.join(wanted)}) are not the table's primary key "
        f"({', '.join(table_key) or 'none'})"
    )


@dataclass(frozen=True)
class LoadShape:
    """What building a batch's load statements needs to know of a mapping and its final table."""

    target: str
    staging: str
    mapped: tuple[str, ...]
    strategy: str
    key: tuple[str, ...]  # the conflict target (empty for `append` without a key)
    update_columns: tuple[str, ...]
    types: dict[str, str]  # of the final table's columns
    written_at: str | None  # the final table's column for when a row was written

    @property
    def final_columns(self) -> tuple[str, ...]:
        return (DEVICE, *self.mapped, BATCH)

    @property
    def dedupe_keys(self) -> tuple[str, ...]:
        """The key columns that tell rows of one batch apart (the injected ones are the same for all)."""
        return tuple(k for k in self.key if k not in INJECTED)

    @property
    def incoming(self) -> sql.Identifier:
        return sql.Identifier(f"incoming_{self.target}"[:63])


def create_incoming(shape: LoadShape) -> sql.Composed:
    """The session's incoming table: shaped like the final table, emptied at every commit."""
    return sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS").format(
        shape.incoming, sql.Identifier(shape.target)
    )


def insert_incoming(shape: LoadShape, *, on_conflict: bool) -> sql.Composed:
    columns = ident(*shape.final_columns)
    return sql.SQL("INSERT INTO {target} ({cols}) SELECT {cols} FROM {incoming}{on_conflict}").format(
        target=sql.Identifier(shape.target),
        cols=columns,
        incoming=shape.incoming,
        on_conflict=sql.SQL(" ") + on_conflict_clause(shape) if on_conflict else sql.SQL(""),
    )


def on_conflict_clause(shape: LoadShape) -> sql.Composed:
    """`ignore`: keep the row there; `update`: take the new values, and mark the row as written by this
    batch, only when they differ (an unchanged row is not rewritten)."""
    keys = ident(*shape.key)
    if shape.strategy == "ignore":
        return sql.SQL("ON CONFLICT ({}) DO NOTHING").format(keys)
    target = sql.Identifier(shape.target)
    sets = [sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in (*shape.update_columns, BATCH)]
    if shape.written_at:
        sets.append(sql.SQL("{} = now()").format(sql.Identifier(shape.written_at)))
    return sql.SQL("ON CONFLICT ({keys}) DO UPDATE SET {sets} WHERE ({old}) IS DISTINCT FROM ({new})").format(
        keys=keys,
        sets=sql.SQL(", ").join(sets),
        old=sql.SQL(", ").join(
            sql.SQL("{}.{}").format(target, sql.Identifier(c)) for c in shape.update_columns
        ),
        new=sql.SQL(", ").join(
            sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in shape.update_columns
        ),
    )


def key_range(shape: LoadShape) -> sql.Composed:
    """The final table's rows of one device within a range of each other key column: a condition its
    primary key answers with one range scan. Parameters: per key column, in order, the device (for
    `device_id`), the batch (for `source_file`), else the lowest and the highest value."""
    conditions: list[sql.Composed] = []
    for key in shape.key:
        cast = sql.SQL(shape.types.get(key, "text"))
        if key in INJECTED:
            conditions.append(sql.SQL("{} = %s::{}").format(sql.Identifier(key), cast))
        else:
            conditions.append(sql.SQL("{} BETWEEN %s::{} AND %s::{}").format(sql.Identifier(key), cast, cast))
    return sql.SQL(" AND ").join(conditions)


def any_in_range(shape: LoadShape) -> sql.Composed:
    return sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(
        sql.Identifier(shape.target), key_range(shape)
    )


def rows_of_batch_in_range(shape: LoadShape) -> sql.Composed:
    """How many rows in the range this batch wrote last (parameters: the batch, then `key_range`'s)."""
    return sql.SQL("SELECT count(*) FROM {} WHERE {} = %s AND {}").format(
        sql.Identifier(shape.target), sql.Identifier(BATCH), key_range(shape)
    )


def repeated_keys(shape: LoadShape) -> sql.Composed:
    """Keys of the incoming rows that an earlier chunk of the batch loaded (parameter: the batch)."""
    return sql.SQL(
        "SELECT {cols} FROM {incoming} i JOIN {target} t USING ({on}) WHERE t.{batch} = %s"
    ).format(
        cols=sql.SQL(", ").join(sql.SQL("i.{}").format(sql.Identifier(k)) for k in shape.dedupe_keys),
        incoming=shape.incoming,
        target=sql.Identifier(shape.target),
        on=ident(*shape.key),
        batch=sql.Identifier(BATCH),
    )


def unmark_superseded(shape: LoadShape) -> sql.Composed:
    """Staging rows of a batch a row of another chunk superseded (same key): not loaded, with a note.
    Parameters: the note, the batch, then one array per dedupe key of the repeated keys."""
    keys = shape.dedupe_keys
    winner = "max" if shape.strategy == "update" else "min"
    arrays = sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(shape.types[k])) for k in keys)
    return sql.SQL(
        "UPDATE {staging} s SET loaded_to_final = false, errors = s.errors || %s::jsonb FROM ("
        "SELECT ctid AS row_id, row_number, {winner}(row_number) OVER (PARTITION BY {keys}) AS kept "
        "FROM {staging} WHERE batch_id = %s AND valid AND ({keys}) IN (SELECT * FROM unnest({arrays}))"
        ") d WHERE s.ctid = d.row_id AND d.row_number <> d.kept AND s.loaded_to_final"
    ).format(staging=sql.Identifier(shape.staging), winner=sql.SQL(winner), keys=ident(*keys), arrays=arrays)


def duplicates_in_incoming(shape: LoadShape) -> sql.Composed:
    """Strategy `fail`: how many waiting rows repeat another on the batch's keys."""
    return sql.SQL(
        "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT {k} FROM {t}) d) FROM {t}"
    ).format(k=ident(*shape.dedupe_keys), t=shape.incoming)


def duplicates_in_staging(shape: LoadShape) -> sql.Composed:
    """Strategy `append`: how many valid rows of a batch repeat another on its keys (parameter: the batch)."""
    return sql.SQL(
        "SELECT count(*) - count(DISTINCT ({keys})) FROM {staging} WHERE batch_id = %s AND valid"
    ).format(keys=ident(*shape.dedupe_keys), staging=sql.Identifier(shape.staging))


def existing_matches(shape: LoadShape) -> sql.Composed:
    """Strategy `fail`: how many waiting rows match a row of the final table."""
    join = sql.SQL(" AND ").join(sql.SQL("t.{c} = i.{c}").format(c=sql.Identifier(c)) for c in shape.key)
    return sql.SQL("SELECT count(*) FROM {incoming} i JOIN {target} t ON {join}").format(
        incoming=shape.incoming, target=sql.Identifier(shape.target), join=join
    )
