"""The per-step training loss of a job, recorded at bounded resolution by shard 0.

Key ``gradq:job:{id}:loss``: a Redis string of little-endian float64 triples (step, loss, unix
time) in step order, so a reader turns it into an array without parsing (100,000 points: ~2 ms,
where text takes ~300 ms) and ``since`` is a byte offset. Each point is the mean batch loss over
``stride`` consecutive steps and sits at the last of them, where ``stride = ceil(steps_total /
MAX_POINTS)``: a job never stores more than ``MAX_POINTS`` points, and a short job keeps every
step. Points are appended in batches (``flush``, called just before each progress report), so
recording costs one APPEND per report, not one per step.
"""

from __future__ import annotations

import math
import time

import numpy as np

MAX_POINTS = 2000
POINT = np.dtype("<f8")  # one value; a point is three of them
POINT_BYTES = 3 * POINT.itemsize


def loss_key(job_id: str) -> str:
    return f"gradq:job:{job_id}:loss"


def stride_for(steps_total: int) -> int:
    """Steps averaged into one point so that a job stores at most ``MAX_POINTS`` points."""
    return max(1, math.ceil(max(steps_total, 1) / MAX_POINTS))


class LossRecorder:
    """Shard 0's writer: ``add(step, loss)`` after every step, ``flush()`` before each report.

    Writes go through ``fence`` (the shard's ``AttemptFence``: a stale attempt's are refused)."""

    def __init__(self, fence, job_id: str, steps_total: int, resumed_step: int = 0):
        self.fence, self.key = fence, loss_key(job_id)
        self.stride = stride_for(steps_total)
        self._sum, self._count = 0.0, 0
        self._pending: list[tuple[float, float, float]] = []
        drop_after(fence, job_id, resumed_step)  # a restart replays the steps after its checkpoint

    def add(self, step: int, loss: float | None) -> None:
        """Record the mean loss of global step ``step`` (1-based: steps done); None is skipped."""
        if loss is not None and math.isfinite(loss):
            self._sum += loss
            self._count += 1
        if step % self.stride == 0 and self._count:
            self._pending.append((step, self._sum / self._count, time.time()))
            self._sum, self._count = 0.0, 0

    def flush(self, final_step: int | None = None) -> None:
        """Push the finished points (and, with ``final_step``, the partial last one)."""
        if final_step is not None and self._count:
            self._pending.append((final_step, self._sum / self._count, time.time()))
            self._sum, self._count = 0.0, 0
        if self._pending:
            points = np.asarray(self._pending, dtype=POINT).tobytes()
            self.fence.commit(lambda pipe: pipe.append(self.key, points))
            self._pending = []

    def checkpoint(self) -> list[float]:
        """Flush, and return the unfinished point's state for the checkpoint's metadata."""
        self.flush()
        return [self._sum, self._count]

    def resume(self, state: list[float] | None) -> None:
        """Continue the unfinished point of a checkpoint (``checkpoint()``'s return value)."""
        if state:
            self._sum, self._count = float(state[0]), int(state[1])


def drop_after(fence, job_id: str, step: int) -> None:
    """Remove points past ``step`` (recorded by an attempt that died before its checkpoint), in
    one transaction through ``fence`` (``AttemptFence`` or ``fence.Unfenced``)."""
    key = loss_key(job_id)

    def plan(pipe):
        points = read_points(pipe, job_id)
        keep = int(np.searchsorted(points[:, 0], step, side="right"))
        if keep == len(points):
            return None
        return lambda pipe: pipe.set(key, points[:keep].astype(POINT).tobytes())

    fence.commit_after([key], plan)


def read_points(redis, job_id: str, since: int = 0) -> np.ndarray:
    """Stored points from point ``since`` on: float64 array (n, 3) of step, loss, unix time."""
    raw = redis.getrange(loss_key(job_id), since * POINT_BYTES, -1) or b""
    usable = len(raw) - len(raw) % POINT_BYTES  # a torn tail cannot happen with APPEND; be safe
    points = np.frombuffer(raw[:usable], dtype=POINT).reshape(-1, 3).astype(np.float64)
    return in_step_order(points) if since == 0 else points


def in_step_order(points: np.ndarray) -> np.ndarray:
    """Points sorted by step, the last written one kept per step.

    A stale attempt may append one batch after its successor trimmed the list; points sit at
    multiples of the stride, so the successor rewrites the same steps and its values win.
    """
    steps = points[:, 0]
    if len(steps) < 2 or bool(np.all(steps[1:] > steps[:-1])):
        return points
    order = np.argsort(steps, kind="stable")
    ordered = points[order]
    last = np.append(ordered[1:, 0] != ordered[:-1, 0], True)
    return ordered[last]


def downsample(points: np.ndarray, max_points: int) -> np.ndarray:
    """At most ``max_points`` rows: consecutive points averaged in equal buckets.

    A bucket's point sits at its last step, like a recorded point (which averages its steps),
    so the curve still ends at the last step recorded.
    """
    n = len(points)
    if n <= max_points:
        return points
    edges = np.linspace(0, n, max_points + 1).round().astype(np.int64)
    sums = np.add.reduceat(points[:, 1], edges[:-1])
    counts = np.diff(edges)
    out = points[edges[1:] - 1].copy()
    out[:, 1] = sums / counts
    return out
