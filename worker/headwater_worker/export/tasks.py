"""Which tasks run: those declared inline, those in a mounted ConfigMap, narrowed by `only`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .config import DELETE_SUFFIX, SELECT_SUFFIX, TASK_NAME_PATTERN, ExportConfig, FailureReason
from .errors import ConfigurationError, ExportError

_TASK_NAME = re.compile(TASK_NAME_PATTERN)
_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)


@dataclass(frozen=True)
class ExportTask:
    name: str
    select: str
    delete: str | None = None

    @property
    def copy_statement(self) -> str:
        return copy_statement(self.select, self.name)


def _strip_statement(sql: str) -> str:
    return sql.strip().rstrip(";").rstrip()


def copy_statement(select: str, task: str | None = None) -> str:
    """The `COPY ... TO STDOUT` statement for a task's select.

    A plain query is wrapped as `COPY (<query>) TO STDOUT WITH CSV HEADER`; a complete COPY statement (the
    seed's `select.sql` files hold those) is used as it is, provided it writes to STDOUT.
    """
    body = _strip_statement(select)
    comments = _LEADING_COMMENTS.match(body)
    code = body[comments.end() if comments else 0 :]
    if re.match(r"copy\b", code, re.I):
        if not re.search(r"\bto\s+stdout\b", code, re.I):
            raise ExportError(
                FailureReason.INVALID_QUERY,
                f"the select query of task {task} is a COPY statement that does not write `TO STDOUT`",
                task=task,
            )
        return body
    # Newlines keep a trailing `-- comment` in the query from swallowing the closing parenthesis.
    return f"COPY (\n{body}\n) TO STDOUT WITH CSV HEADER"


def _read_sql(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"cannot read {path.name} in tasksDir: {error}") from error


def tasks_from_dir(folder: Path) -> list[ExportTask]:
    """Tasks in a mounted ConfigMap: keys `<task>.select.sql` / `<task>.delete.sql`; the seed's layout,
    folders `<task>/select.sql` and `<task>/delete.sql`, is read too."""
    if not folder.is_dir():
        raise ConfigurationError(f"tasksDir {folder} is not a folder")
    selects: dict[str, str] = {}
    deletes: dict[str, str] = {}
    # Kubernetes mounts keys as symlinks into hidden `..data` folders: skip everything hidden.
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if (entry / "select.sql").is_file():
                selects[entry.name] = _read_sql(entry / "select.sql")
                if (entry / "delete.sql").is_file():
                    deletes[entry.name] = _read_sql(entry / "delete.sql")
            continue
        if entry.name.endswith(SELECT_SUFFIX):
            selects[entry.name.removesuffix(SELECT_SUFFIX)] = _read_sql(entry)
        elif entry.name.endswith(DELETE_SUFFIX):
            deletes[entry.name.removesuffix(DELETE_SUFFIX)] = _read_sql(entry)
    bad = sorted(name for name in {*selects, *deletes} if not _TASK_NAME.match(name))
    if bad:
        raise ConfigurationError(f"invalid task names in tasksDir: {', '.join(bad)}")
    orphans = sorted(set(deletes) - set(selects))
    if orphans:
        raise ConfigurationError(f"delete queries without a select query in tasksDir: {', '.join(orphans)}")
    tasks = []
    for name in sorted(selects):
        select = selects[name].strip()
        if not select:
            raise ConfigurationError(f"the select query of task {name} in tasksDir is empty")
        delete = deletes.get(name, "").strip() or None
        tasks.append(ExportTask(name=name, select=select, delete=delete))
    return tasks


def resolve_tasks(config: ExportConfig) -> list[ExportTask]:
    """Inline tasks first, then those of `tasksDir` (by name), narrowed to `only` when given."""
    tasks = [ExportTask(name=t.name, select=t.select, delete=t.delete) for t in config.tasks]
    if config.tasks_dir is not None:
        tasks += tasks_from_dir(Path(config.tasks_dir))
    names = [task.name for task in tasks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError(f"tasks declared twice (inline and in tasksDir): {', '.join(duplicates)}")
    if config.only is not None:
        unknown = sorted(set(config.only) - set(names))
        if unknown:
            raise ConfigurationError(f"unknown tasks in `only`: {', '.join(unknown)}")
        tasks = [task for task in tasks if task.name in config.only]
    if not tasks:
        raise ConfigurationError("no export tasks to run")
    for task in tasks:
        _ = task.copy_statement  # refuse a COPY to a server file before any task runs
    return tasks
