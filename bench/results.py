"""The benchmarks' results: one JSON document (`docs/benchmarks.json`) and the table made from it
(`docs/benchmarks.md`).

Each benchmark compares a subject (Headwater doing something) with a baseline (the plainest way to do
the same thing) measured in the same run, and judges the ratio of their medians against a target.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
JSON_PATH = REPO / "docs" / "benchmarks.json"
MARKDOWN_PATH = REPO / "docs" / "benchmarks.md"
ORDER = ("export", "ingest", "ingest_per_row", "reconcile")
TIMES = "\N{MULTIPLICATION SIGN}"

Figures = dict[str, Any]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Side:
    """One side of a comparison: what it does, its figures per repetition and their medians."""

    name: str
    description: str
    runs: list[Figures]
    median: Figures

    @classmethod
    def from_runs(cls, name: str, description: str, runs: list[Figures]) -> Side:
        """Medians of every numeric figure the runs share."""
        keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
        medians = {key: round(median([float(run[key]) for run in runs]), 4) for key in keys}
        return cls(name, description, runs, medians)


@dataclass
class Target:
    """`ratio <op> value`, for example `>= 0.8`."""

    op: Literal[">=", "<="]
    value: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        sign = "\N{GREATER-THAN OR EQUAL TO}" if self.op == ">=" else "\N{LESS-THAN OR EQUAL TO}"
        return f"{sign} {self.value:g}{TIMES}"


@dataclass
class Benchmark:
    key: str
    title: str
    metric: str
    unit: str
    ratio_definition: str
    subject: Side
    baseline: Side
    ratio: float
    target: Target
    met: bool
    repetitions: int
    parameters: Figures = field(default_factory=dict)
    method: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    details: Figures = field(default_factory=dict)

    @classmethod
    def judge(
        cls,
        *,
        key: str,
        title: str,
        metric: str,
        unit: str,
        subject: Side,
        baseline: Side,
        target: Target,
        ratio_definition: str,
        parameters: Figures,
        method: list[str],
        findings: list[str],
        details: Figures | None = None,
    ) -> Benchmark:
        """Ratio of the medians of `metric`, subject over baseline, and whether it meets the target."""
        ratio = round(float(subject.median[metric]) / float(baseline.median[metric]), 3)
        return cls(
            key=key,
            title=title,
            metric=metric,
            unit=unit,
            ratio_definition=ratio_definition,
            subject=subject,
            baseline=baseline,
            ratio=ratio,
            target=target,
            met=target.met(ratio),
            repetitions=len(subject.runs),
            parameters=parameters,
            method=method,
            findings=findings,
            details=details or {},
        )


def machine() -> Figures:
    return {
        "nproc": os.cpu_count() or 0,
        "cpu": _cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- files ------------------------------------------------------------------------------------------------


def load(path: Path = JSON_PATH) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except ValueError:
        return {}
    return loaded


def save(results: Sequence[Benchmark], json_path: Path = JSON_PATH, md_path: Path = MARKDOWN_PATH) -> None:
    """Merge `results` into the JSON document (a benchmark run alone keeps the others' last results) and
    regenerate the Markdown from it."""
    document = load(json_path)
    benchmarks: dict[str, Any] = dict(document.get("benchmarks") or {})
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for result in results:
        benchmarks[result.key] = {"measured_at": now, "machine": machine(), **_plain(result)}
    ordered = {
        key: benchmarks[key] for key in (*ORDER, *sorted(set(benchmarks) - set(ORDER))) if key in benchmarks
    }
    document = {
        "generated_by": "make bench (python -m bench all)",
        "benchmarks": ordered,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(render(document))


def _plain(result: Benchmark) -> dict[str, Any]:
    data = asdict(result)
    data.pop("key")
    data["target"] = {"op": result.target.op, "value": result.target.value, "text": str(result.target)}
    return data


# -- Markdown ---------------------------------------------------------------------------------------------


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _label(key: str) -> str:
    return key.replace("_", " ")


def render(document: Mapping[str, Any]) -> str:
    benchmarks: Mapping[str, Any] = document.get("benchmarks") or {}
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` from [benchmarks.json](benchmarks.json), which holds the same figures "
        "for machines; do not edit by hand.",
        "",
        "Machines are noisy, so speed is never judged in seconds: each benchmark measures Headwater and a "
        "baseline doing the same work in the same run, interleaved, and compares the medians of their "
        "repetitions as a ratio.",
        "",
        "| benchmark | Headwater (median) | baseline (median) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for key, bench in benchmarks.items():
        metric, unit = bench["metric"], bench["unit"]
        lines.append(
            f"| [{bench['title']}](#{key}) "
            f"| {_number(bench['subject']['median'][metric])} {unit} "
            f"| {_number(bench['baseline']['median'][metric])} {unit} "
            f"| {bench['ratio']:.2f}{TIMES} "
            f"| {bench['target']['text']} "
            f"| {'yes' if bench['met'] else '**no**'} |"
        )
    for key, bench in benchmarks.items():
        lines += ["", f'<a id="{key}"></a>', "", f"## {bench['title']}", ""]
        mach = bench.get("machine") or {}
        lines.append(
            f"Measured {bench.get('measured_at', '?')} on {mach.get('nproc', '?')} cores (`nproc`), "
            f"{mach.get('cpu', '?')}, {mach.get('memory_gib', '?')} GiB of memory, Python "
            f"{mach.get('python', '?')}."
        )
        lines += [
            "",
            f"**Ratio: {bench['ratio']:.2f}{TIMES}** ({bench['ratio_definition']}); target "
            f"{bench['target']['text']}: **{'met' if bench['met'] else 'not met'}**.",
            "",
        ]
        lines += ["### Method", ""]
        lines += [f"- {item}" for item in bench.get("method") or ()]
        lines += [
            f"- **Headwater** — {bench['subject']['description']}",
            f"- **Baseline** — {bench['baseline']['description']}",
            f"- {bench['repetitions']} repetition{'s' if bench['repetitions'] != 1 else ''} of each side, "
            "interleaved; the figures compared are the medians.",
        ]
        if bench.get("parameters"):
            lines += [
                "",
                "Parameters: "
                + ", ".join(f"{_label(k)} {_number(v)}" for k, v in bench["parameters"].items())
                + ".",
            ]
        lines += ["", "### Runs", ""]
        lines += _runs_table(bench)
        if bench.get("findings"):
            lines += ["", "### Findings", ""]
            lines += [f"- {item}" for item in bench["findings"]]
    return "\n".join(lines) + "\n"


def _runs_table(bench: Mapping[str, Any]) -> list[str]:
    sides = [("Headwater", bench["subject"]), ("baseline", bench["baseline"])]
    keys: list[str] = []
    for _, side in sides:
        for run in side["runs"]:
            keys += [k for k in run if k not in keys]
    lines = [
        "| side | run | " + " | ".join(_label(k) for k in keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for name, side in sides:
        for number, run in enumerate(side["runs"], 1):
            lines.append(f"| {name} | {number} | " + " | ".join(_number(run.get(k, "")) for k in keys) + " |")
        lines.append(
            f"| {name} | **median** | " + " | ".join(_number(side["median"].get(k, "")) for k in keys) + " |"
        )
    return lines
