"""The per-step training loss of a job, recorded at bounded resolution by shard 0.

Key ``gradq:job:{id}:loss``: a Redis list of ``"<step> <loss> <unix time>"`` strings in step order.
Each point is the mean batch loss over ``stride`` consecutive steps and sits at the last of them,
where ``stride = ceil(steps_total / MAX_POINTS)``: a job never stores more than ``MAX_POINTS``
points, and a short job keeps every step. Points are pushed in batches (``flush``, called just
before each progress report), so recording costs one RPUSH per report, not one per step.
"""

from __future__ import annotations

import math
import time

import numpy as np

MAX_POINTS = 2000


def loss_key(job_id: str) -> str:
    return f"gradq:job:{job_id}:loss"


def stride_for(steps_total: int) -> int:
    """Steps averaged into one point so that a job stores at most ``MAX_POINTS`` points."""
    return max(1, math.ceil(max(steps_total, 1) / MAX_POINTS))


class LossRecorder:
    """Shard 0's writer: ``add(step, loss)`` after every step, ``flush()`` before each report."""

    def __init__(self, redis, job_id: str, steps_total: int, resumed_step: int = 0):
        self.redis, self.key = redis, loss_key(job_id)
        self.stride = stride_for(steps_total)
        self._sum, self._count = 0.0, 0
        self._pending: list[str] = []
        drop_after(redis, job_id, resumed_step)  # a restart replays the steps after its checkpoint

    def add(self, step: int, loss: float | None) -> None:
        """Record the mean loss of global step ``step`` (1-based: steps done); None is skipped."""
        if loss is not None and math.isfinite(loss):
            self._sum += loss
            self._count += 1
        if step % self.stride == 0 and self._count:
            self._pending.append(f"{step} {self._sum / self._count!r} {time.time():.3f}")
            self._sum, self._count = 0.0, 0

    def flush(self, final_step: int | None = None) -> None:
        """Push the finished points (and, with ``final_step``, the partial last one)."""
        if final_step is not None and self._count:
            self._pending.append(f"{final_step} {self._sum / self._count!r} {time.time():.3f}")
            self._sum, self._count = 0.0, 0
        if self._pending:
            self.redis.rpush(self.key, *self._pending)
            self._pending = []


def drop_after(redis, job_id: str, step: int) -> None:
    """Remove points past ``step`` (recorded by an attempt that died before its checkpoint)."""
    points = read_points(redis, job_id)
    keep = int(np.searchsorted(points[:, 0], step, side="right"))
    if keep < len(points):
        if keep == 0:
            redis.delete(loss_key(job_id))
        else:
            redis.ltrim(loss_key(job_id), 0, keep - 1)


def read_points(redis, job_id: str, since: int = 0) -> np.ndarray:
    """Stored points from list index ``since`` on: float64 array (n, 3) of step, loss, time."""
    raw = redis.lrange(loss_key(job_id), since, -1)
    if not raw:
        return np.empty((0, 3))
    return np.array(b" ".join(raw).split(), dtype=np.float64).reshape(-1, 3)


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
