"""Search spaces over job specs: JSON paths, points of the space, the trial spec of a point.

A space maps paths such as ``optimizer.lr`` or ``model.layers[0].units`` to a dimension dict
(``{"type": "float"|"int"|"categorical", ...}``, validated by the API). Nothing here imports
Optuna: the API uses it to check a space at submit, the coordinator to build trial specs.
"""

from __future__ import annotations

import copy
import itertools
import math
import re

import numpy as np

PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d{1,4}\])*$")
TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
MAX_GRID_POINTS = 10_000


def parse_path(path: str) -> list[str | int]:
    """``"model.layers[0].units"`` -> ``["model", "layers", 0, "units"]``; ValueError if not a
    path of keys and ``[index]`` parts."""
    if not PATH.match(path):
        raise ValueError(f"{path!r} is not a path like optimizer.lr or model.layers[0].units")
    return [int(index) if index else key for key, index in TOKEN.findall(path)]


def missing_part(spec: dict, path: str) -> str | None:
    """None if ``path`` names a value in ``spec``, else the first part that is not there."""
    node = spec
    for part in parse_path(path):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return f"[{part}]"
        elif not isinstance(node, dict) or part not in node:
            return part
        node = node[part]
    return None


def apply_point(spec: dict, point: dict) -> dict:
    """A deep copy of ``spec`` with each path of ``point`` set to its value."""
    trial = copy.deepcopy(spec)
    for path, value in point.items():
        *parents, last = parse_path(path)
        node = trial
        for part in parents:
            node = node[part]
        node[last] = value
    return trial


def grid_count(dimension: dict) -> int | None:
    """How many values a finite dimension has (categorical, int, float with a step), counted
    without listing them (an int in [1, 2**31] has 2**31); None when it is continuous."""
    kind = dimension["type"]
    if kind == "categorical":
        return len(dimension["choices"])
    step = dimension.get("step")
    if kind == "int":
        return (dimension["high"] - dimension["low"]) // (step or 1) + 1
    if step is None:
        return None
    return int(math.floor((dimension["high"] - dimension["low"]) / step + 1e-9)) + 1


def grid_value(dimension: dict, index: int):
    """Value ``index`` (0 <= index < ``grid_count``) of a finite dimension."""
    if dimension["type"] == "categorical":
        return dimension["choices"][index]
    if dimension["type"] == "int":
        return dimension["low"] + index * (dimension.get("step") or 1)
    return round(dimension["low"] + index * dimension["step"], 12)


def grid_values(dimension: dict) -> list | None:
    """Every value of a finite dimension; None otherwise. Only for dimensions of a grid already
    checked against MAX_GRID_POINTS: anything else uses ``grid_count`` and ``grid_value``."""
    count = grid_count(dimension)
    if count is None:
        return None
    return [grid_value(dimension, i) for i in range(count)]


def grid_size(space: dict) -> int | None:
    """Points of the full grid, or None when a dimension is continuous."""
    counts = [grid_count(dimension) for dimension in space.values()]
    if any(count is None for count in counts):
        return None
    return math.prod(counts)


def _ends(dimension: dict) -> list:
    if dimension["type"] == "categorical":
        return list(dimension["choices"])
    count = grid_count(dimension)
    if count is not None:
        return [grid_value(dimension, 0), grid_value(dimension, count - 1)]
    return [dimension["low"], dimension["high"]]


def corners(space: dict, limit: int, seed: int = 0) -> list[dict]:
    """Points made of each dimension's ends (every choice of a categorical); at most ``limit``
    of them, picked at random (``seed``) when there are more."""
    paths = list(space)
    ends = [_ends(space[path]) for path in paths]
    total = math.prod(len(values) for values in ends)
    if total <= limit:
        combos = itertools.product(*ends)
    else:
        rng = np.random.default_rng(seed)
        combos = (tuple(values[rng.integers(len(values))] for values in ends) for _ in range(limit))
    return [dict(zip(paths, combo, strict=True)) for combo in combos]


def random_points(space: dict, count: int, seed: int = 0) -> list[dict]:
    """``count`` points drawn uniformly (log-uniformly where ``log``) from the space."""
    rng = np.random.default_rng(seed)
    return [{path: _draw(d, rng) for path, d in space.items()} for _ in range(count)]


def _draw(dimension: dict, rng: np.random.Generator):
    count = grid_count(dimension)
    if dimension["type"] == "categorical" or (count is not None and not dimension.get("log")):
        return grid_value(dimension, int(rng.integers(count)))
    low, high = dimension["low"], dimension["high"]
    if dimension.get("log"):
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    return min(max(round(value), low), high) if dimension["type"] == "int" else float(value)
