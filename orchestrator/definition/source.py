"""Where every key and value of a workflow document is: the source map that locates problems."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import Problem

Path_ = tuple[str | int, ...]
"""A location in a document: keys and list indexes from the root (``("steps", "fetch", "needs", 0)``)."""


@dataclass
class SourceMap:
    """Positions (1-based line and column) of every key and value of a document.

    ``value_at`` and ``key_at`` fall back to the closest enclosing position, so a problem about
    a missing field points at the mapping that lacks it.
    """

    file: str
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def value_at(self, path: Path_) -> tuple[int, int]:
        for end in range(len(path), -1, -1):
            if (pos := self.values.get(path[:end])) is not None:
                return pos
        return (0, 0)

    def key_at(self, path: Path_) -> tuple[int, int]:
        for end in range(len(path), -1, -1):
            if (pos := self.keys.get(path[:end])) is not None:
                return pos
        return self.value_at(path)

    def problem(self, path: Path_, message: str, *, at_key: bool = False) -> Problem:
        line, col = self.key_at(path) if at_key else self.value_at(path)
        return Problem(self.file, line, col, message)
