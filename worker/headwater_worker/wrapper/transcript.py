"""What a generation asked a model and what it answered, kept for the user to read.

Each request and each answer is an entry; the generator writes them into the Wrapper's prompts ConfigMap
(`<name>-prompts`), one key per entry (`001-system.md`, `002-attempt-1-request.md`, ...) and an index
(`000-index.md`) saying which model, which prompt version and what was left out. Every text is redacted
before it is kept. A ConfigMap holds at most 1 MiB: beyond `TRANSCRIPT_LIMIT_BYTES` the oldest entries are
dropped, and the index counts them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..logs import redact

TRANSCRIPT_LIMIT_BYTES = 512 * 1024
INDEX_KEY = "000-index.md"

SaveTranscript = Callable[[dict[str, str]], None]


@dataclass(frozen=True)
class Entry:
    title: str
    text: str

    def key(self, number: int) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")
        return f"{number:03d}-{slug}.md"


@dataclass
class Transcript:
    """The entries of one generation, oldest first, redacted as they are added."""

    heading: str
    limit_bytes: int = TRANSCRIPT_LIMIT_BYTES
    entries: list[Entry] = field(default_factory=list)

    def add(self, title: str, text: str) -> None:
        self.entries.append(Entry(title, redact(text)))

    def data(self) -> dict[str, str]:
        """The ConfigMap's data: the index and the newest entries that fit within the limit."""
        keyed = [(entry.key(number), entry.text) for number, entry in enumerate(self.entries, 1)]
        kept: list[tuple[str, str]] = []
        size = 0
        for key, text in reversed(keyed):
            size += len(key) + len(text.encode())
            if size > self.limit_bytes:
                break
            kept.insert(0, (key, text))
        dropped = len(keyed) - len(kept)
        lines = [redact(self.heading), "", f"{len(keyed)} entries, oldest first:"]
        lines += [f"- {key}" for key, _ in kept]
        if dropped:
            lines.append(
                f"- the {dropped} oldest left out: the transcript is kept within {self.limit_bytes:,} bytes"
            )
        return {INDEX_KEY: "\n".join(lines) + "\n", **dict(kept)}
