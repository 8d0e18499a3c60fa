"""The per-step loss curve: bounded points, means over strides, restarts, downsampling."""

from __future__ import annotations

import numpy as np

from worker.fence import Unfenced
from worker.loss_curve import MAX_POINTS, LossRecorder, downsample, read_points, stride_for


def test_a_short_job_keeps_every_step(redis_client):
    recorder = LossRecorder(Unfenced(redis_client), "job_a", steps_total=10)
    for step in range(1, 11):
        recorder.add(step, float(step))
    recorder.flush()

    points = read_points(redis_client, "job_a")

    assert points[:, 0].tolist() == list(range(1, 11))
    assert points[:, 1].tolist() == [float(s) for s in range(1, 11)]


def test_a_long_job_stores_at_most_max_points_each_the_mean_of_its_steps(redis_client):
    steps_total = 10 * MAX_POINTS + 3
    recorder = LossRecorder(Unfenced(redis_client), "job_b", steps_total=steps_total)
    for step in range(1, steps_total + 1):
        recorder.add(step, float(step))
        if step % 997 == 0:
            recorder.flush()
    recorder.flush(final_step=steps_total)

    points = read_points(redis_client, "job_b")
    stride = stride_for(steps_total)

    assert len(points) <= MAX_POINTS
    assert points[0].tolist()[:2] == [stride, np.mean(np.arange(1, stride + 1))]
    assert points[-1, 0] == steps_total  # the partial last point is kept at the final flush


def test_nothing_reaches_redis_before_a_flush(redis_client):
    recorder = LossRecorder(Unfenced(redis_client), "job_c", steps_total=5)
    recorder.add(1, 0.5)

    assert len(read_points(redis_client, "job_c")) == 0
    recorder.flush()
    assert len(read_points(redis_client, "job_c")) == 1


def test_a_resumed_attempt_drops_the_points_after_its_checkpoint(redis_client):
    first = LossRecorder(Unfenced(redis_client), "job_d", steps_total=10)
    for step in range(1, 8):
        first.add(step, 1.0)
    first.flush()

    LossRecorder(Unfenced(redis_client), "job_d", steps_total=10, resumed_step=4)

    assert read_points(redis_client, "job_d")[:, 0].tolist() == [1, 2, 3, 4]


def test_non_finite_losses_are_not_averaged_in(redis_client):
    recorder = LossRecorder(Unfenced(redis_client), "job_e", steps_total=2)
    recorder.add(1, float("nan"))
    recorder.add(2, 2.0)
    recorder.flush()

    assert read_points(redis_client, "job_e")[:, :2].tolist() == [[2.0, 2.0]]


def test_downsample_averages_equal_buckets_and_ends_at_the_last_step():
    steps = np.arange(1, 101, dtype=np.float64)
    points = np.stack([steps, steps * 2, steps], axis=1)

    shown = downsample(points, 10)

    assert len(shown) == 10
    assert shown[0, 0] == 10 and shown[0, 1] == np.mean(steps[:10] * 2)
    assert shown[-1, 0] == 100
    assert downsample(points, 1000) is points


def test_a_stale_batch_written_after_a_restart_is_overwritten_by_the_new_attempt(redis_client):
    first = LossRecorder(Unfenced(redis_client), "job_f", steps_total=10)
    for step in range(1, 5):
        first.add(step, 1.0)
    first.flush()
    second = LossRecorder(Unfenced(redis_client), "job_f", steps_total=10, resumed_step=2)
    first.add(5, 1.0)
    first.add(6, 1.0)
    first.flush()  # the old attempt's last report lands after the trim
    for step in range(3, 7):
        second.add(step, 2.0)
    second.flush()

    points = read_points(redis_client, "job_f")

    assert points[:, 0].tolist() == [1, 2, 3, 4, 5, 6]
    assert points[:, 1].tolist() == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_a_resumed_recorder_finishes_the_point_its_checkpoint_left_open(redis_client):
    unfenced = Unfenced(redis_client)
    first = LossRecorder(unfenced, "job_g", steps_total=3 * MAX_POINTS)  # 3 steps a point
    first.add(1, 1.0)
    state = first.checkpoint()
    first.add(2, 100.0)  # lost with the attempt: after the checkpoint, never flushed

    second = LossRecorder(unfenced, "job_g", steps_total=3 * MAX_POINTS, resumed_step=1)
    second.resume(state)
    second.add(2, 2.0)
    second.add(3, 3.0)
    second.flush()

    assert read_points(redis_client, "job_g")[:, :2].tolist() == [[3.0, 2.0]]
