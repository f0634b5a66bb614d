"""The checks a collector module passes before it is stored, whoever wrote it.

In order: it parses; `ruff` finds nothing with a fixed rule set; it holds no placeholder; it imports only
what the contract allows and names no forbidden builtin, no private or dunder attribute and no module an
allowed module holds (`typing.sys`); it defines `collect(since, source)`; and a dry run in a child process
with CPU, memory and time limits, on the sample, yields at least one point with a valid timestamp and a
finite value. Every error is one line, the first ones are kept.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .contract import ALLOWED_IMPORTS, FORBIDDEN_ATTRIBUTES, FORBIDDEN_NAMES
from .harness import allowed_import
from .sandbox import DRY_RUN_LIMITS, CollectorFailedError, CollectorProcess, Limits

MAX_ERRORS = 20
RUFF_RULES = ("E", "F", "W", "B")
RUFF_LINE_LENGTH = 120
PLACEHOLDER = re.compile(r"\b(TODO|FIXME|XXX)\b|your[_-]?api[_-]?key|example\.(com|org)", re.IGNORECASE)


@dataclass
class Verdict:
    errors: list[str] = field(default_factory=list)
    points: int = 0

    @property
    def passed(self) -> bool:
        return not self.errors

    def add(self, error: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(" ".join(error.split())[:1000])


def _imported_names(node: ast.Import | ast.ImportFrom) -> list[tuple[str, tuple[str, ...] | None]]:
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    if node.level:
        return [("." * node.level + (node.module or ""), None)]
    return [(node.module or "", tuple(alias.name for alias in node.names))]


def _placeholder_body(body: list[ast.stmt]) -> bool:
    statements = [
        s
        for s in body
        if not (
            isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str)
        )
    ]
    return all(
        isinstance(s, ast.Pass)
        or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and s.value.value is Ellipsis)
        for s in statements
    )


@functools.cache
def escaping_attributes() -> frozenset[str]:
    """Public attributes of the allowed modules that are modules outside the allow-list (`typing.sys`): a
    way out to `sys.modules` a collector must not take."""
    found: set[str] = set()
    for name in ALLOWED_IMPORTS:
        module = importlib.import_module(name)
        for attribute in dir(module):
            value = getattr(module, attribute, None)
            if isinstance(value, ModuleType) and value.__name__ not in ALLOWED_IMPORTS:
                found.add(attribute)
    return frozenset(found)


def _forbidden_attribute(attribute: str) -> bool:
    return (
        attribute.startswith("_") or attribute in FORBIDDEN_ATTRIBUTES or attribute in escaping_attributes()
    )


def static_errors(tree: ast.Module, code: str, verdict: Verdict) -> None:
    """Imports, names, attributes, placeholders and `collect`: what the code says, without running it."""
    for number, line in enumerate(code.splitlines(), 1):
        found = PLACEHOLDER.search(line)
        if found:
            verdict.add(f"line {number}: placeholder {found.group(0)!r}")
    collect: ast.FunctionDef | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name, fromlist in _imported_names(node):
                if not allowed_import(name, fromlist):
                    verdict.add(f"line {node.lineno}: import of {name!r} is not allowed")
        elif isinstance(node, ast.Name) and (node.id in FORBIDDEN_NAMES or node.id.startswith("__")):
            verdict.add(f"line {node.lineno}: {node.id!r} is not allowed")
        elif isinstance(node, ast.Attribute) and _forbidden_attribute(node.attr):
            verdict.add(f"line {node.lineno}: attribute {node.attr!r} is not allowed")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if _placeholder_body(node.body):
                verdict.add(f"line {node.lineno}: function {node.name!r} has no body but a placeholder")
            if node.name == "collect" and isinstance(node, ast.FunctionDef) and node in tree.body:
                collect = node
        elif isinstance(node, ast.Global | ast.Nonlocal):
            verdict.add(f"line {node.lineno}: {type(node).__name__.lower()} statements are not allowed")
    if collect is None:
        verdict.add("the module defines no top-level function collect(since, source)")
    elif len(collect.args.args) != 2:
        verdict.add(f"line {collect.lineno}: collect must take exactly (since, source)")


def lint_errors(code: str, verdict: Verdict) -> None:
    command = [
        sys.executable, "-m", "ruff", "check", "--isolated", "--quiet", "--no-fix", "--output-format", "json",
        "--select", ",".join(RUFF_RULES), "--line-length", str(RUFF_LINE_LENGTH),
        "--stdin-filename", "wrapper.py", "-",
    ]  # fmt: skip
    finished = subprocess.run(command, input=code, capture_output=True, text=True, timeout=60, check=False)
    if finished.returncode not in (0, 1):
        verdict.add(f"ruff could not check the module: {finished.stderr.strip()[:300]}")
        return
    for finding in json.loads(finished.stdout or "[]"):
        row = (finding.get("location") or {}).get("row")
        verdict.add(f"line {row}: ruff {finding.get('code')}: {finding.get('message')}")


def dry_run(code: str, source: Mapping[str, Any], verdict: Verdict, limits: Limits = DRY_RUN_LIMITS) -> None:
    process = CollectorProcess(code, None, source, limits)
    try:
        for _ in process.points():
            verdict.points += 1
    except CollectorFailedError as failure:
        verdict.add(f"dry run: {failure.reason}: {failure.message}")
        return
    if verdict.points == 0:
        verdict.add("dry run: collect yielded no point from the sample")


def validate(code: str, dry_run_source: Mapping[str, Any] | None, limits: Limits = DRY_RUN_LIMITS) -> Verdict:
    """Every check, in order; the dry run only for code that passed the others (`dry_run_source` None: no
    dry run)."""
    verdict = Verdict()
    try:
        tree = ast.parse(code, filename="wrapper.py")
    except SyntaxError as error:
        verdict.add(f"line {error.lineno}: syntax error: {error.msg}")
        return verdict
    static_errors(tree, code, verdict)
    lint_errors(code, verdict)
    if verdict.passed and dry_run_source is not None:
        dry_run(code, dry_run_source, verdict, limits)
    return verdict
