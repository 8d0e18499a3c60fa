"""The label column of a CSV upload: numbers (class indices or regression targets) or text
class names, decided only once every row was seen (a text label on the last line makes every
label a name). Names are numbered in sorted order (Python's ``sorted``: by code point)."""

from __future__ import annotations

import re

import numpy as np

from worker.datasets.base import DatasetError

_INT = re.compile(r"\s*[+-]?\d+\s*")
MAX_CLASSES = 10_000  # of any upload, text or numeric labels (worker.datasets.uploads)
MAX_CLASS_NAME = 200  # characters; what an imported model file may hold per class name
NOT_A_LABEL = "is not a number nor a class name (empty, or a control character)"


class LabelColumn:
    """The label column as the blocks go by: numbers (into y) and, while they are few and short
    enough to be class names, each distinct cell's first-seen code (into ``codes``), so a text
    label met on the last line still gives every row its class."""

    def __init__(self, max_rows: int, header: list[str], column: int):
        self.header, self.column = header, column
        self.codes = np.empty(max_rows, dtype=np.int32)
        self.names: dict[str, int] | None = {}  # None once the cells cannot be class names
        self.not_names = (0, "")  # (line, why not): too many distinct cells, or one too long
        self.text_at: tuple[int, str] | None = None  # (line, cell) of the first text label
        self.non_finite_at: tuple[int, str] | None = None
        self.integral = True
        self.feature_text_hint = ""

    def add(self, cells: list[str], starts: list[int], n: int) -> np.ndarray | None:
        """Record a block's label cells (rows ``n:``); their numbers, or None if one is text."""
        self._remember_names(cells, starts, n)
        if self.text_at is None:
            try:
                values = np.array(cells, dtype=np.float64)
            except ValueError:
                pass
            else:
                bad = np.flatnonzero(~np.isfinite(values))
                if bad.size and self.non_finite_at is None:
                    self.non_finite_at = (starts[bad[0]], cells[bad[0]])
                self.integral = self.integral and all(_INT.fullmatch(c) for c in cells)
                return values
        if self.text_at is None:
            at = next(i for i, cell in enumerate(cells) if not is_number(cell))
            if not is_class_name(cells[at].strip()):
                bad_cell(starts[at], self.column, self.header, cells[at], NOT_A_LABEL)
            self.text_at = (starts[at], cells[at])
        return None

    def _remember_names(self, cells: list[str], starts: list[int], n: int) -> None:
        """Codes of the block's names; new names in order of first appearance (C-speed set and
        map calls: this runs on every upload, numeric labels too)."""
        names = self.names
        if names is None:
            return
        stripped = list(map(str.strip, cells))
        for name in dict.fromkeys(stripped):
            if name in names:
                continue
            if not is_class_name(name):
                at = stripped.index(name)
                bad_cell(starts[at], self.column, self.header, cells[at], NOT_A_LABEL)
            if len(names) == MAX_CLASSES or len(name) > MAX_CLASS_NAME:
                self.not_names = self._why_not(name, starts[stripped.index(name)], len(names))
                self.names = None
                return
            names[name] = len(names)
        self.codes[n : n + len(cells)] = list(map(names.__getitem__, stripped))

    @staticmethod
    def _why_not(name: str, line: int, count: int) -> tuple[int, str]:
        if len(name) > MAX_CLASS_NAME:
            return line, f"a label of {len(name)} characters (at most {MAX_CLASS_NAME})"
        return line, f"{count + 1} distinct labels; at most {MAX_CLASSES} classes are supported"

    def class_indices(self, n: int) -> tuple[np.ndarray, list[str]]:
        """(int64 index of each row's name in the sorted names, the sorted names)."""
        if self.names is None:
            line, cell = self.text_at
            shown = cell if len(cell) <= 40 else cell[:40] + "..."
            at, reason = self.not_names
            raise DatasetError(
                f"line {at}, column {self.column + 1} ({self.header[self.column]!r}): {reason} "
                f"(the labels are text, e.g. {shown!r} on line {line}, so each distinct one "
                "is a class name)"
            )
        classes = sorted(self.names)
        position = {name: index for index, name in enumerate(classes)}
        rank = np.empty(len(classes), dtype=np.int64)
        rank[list(self.names.values())] = [position[name] for name in self.names]
        return rank[self.codes[:n]], classes


def bad_cell(line: int, column: int, header: list[str], cell: str, problem: str):
    shown = cell if len(cell) <= 40 else cell[:40] + "..."
    raise DatasetError(
        f"line {line}, column {column + 1} ({header[column]!r}): {shown!r} {problem}"
    )


def is_class_name(text: str) -> bool:
    """Not empty, and no line breaks or other control characters (names are shown and listed)."""
    return bool(text) and text.isprintable()


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
