"""One shard's long-lived training loop (synchronous data-parallel SGD, synchronised by Redis).

Every replica builds the same model from the spec seed and walks the same global batches; each step
it computes the loss gradient of its ``shard_slice`` of the global batch, ``allreduce_mean`` turns
that into the gradient of the whole batch (weighted by slice sizes), and every replica applies the
same optimizer step: the weights stay identical on all shards and equal single-process training.
The batch loss rides in the last slot of the gradient vector, so it costs no extra round trip.
Shard 0 writes progress, checkpoints and, at the end, the model. Batchnorm running statistics are
averaged across shards at each epoch end (in training mode each shard normalises its own slice).
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from nnlib.batching import global_batches, min_batch_for, shard_slice
from nnlib.training import early_stopping_from_spec
from worker.collective.local_sgd import LocalSGD
from worker.huge_pages import advise_huge_pages
from worker.job_finish import finish_job
from worker.loss_curve import LossRecorder
from worker.replica import (
    FlatGradients,
    SliceRows,
    accuracy_from_sums,
    evaluate_sums,
    rng_states,
)
from worker.replica_setup import Replica
from worker.shard_context import ShardContext
from worker.steps import exact_step, local_step, overlap_ignored, overlap_in_use
from worker.stopping import WorkerStoppingError
from worker.storage.checkpoint_writer import CheckpointWriter

PROGRESS_EVERY_SECONDS = 0.5
log = logging.getLogger("gradq.job")


def train(ctx: ShardContext, replica: Replica) -> dict:
    """Train the job to the end (or raise); returns the final record when shard 0 stored it."""
    writer = CheckpointWriter(
        replica.artifacts, ctx.job_id, ctx.settings.checkpoints_kept, ctx.fence
    )
    try:
        return _train(ctx, replica, writer)
    finally:
        # whatever ends training, the save in flight is published before anyone reads or trims
        # the job's checkpoints; its error matters only when nothing else went wrong
        writer.close(raise_errors=sys.exc_info()[0] is None)


def _train(ctx: ShardContext, replica: Replica, writer: CheckpointWriter) -> dict:
    spec, data, model = replica.spec, replica.data, replica.model
    loss, optimizer, meta = replica.loss, replica.optimizer, replica.meta
    seed, steps_total = int(spec.get("seed", 0)), replica.steps_total
    n, batch_size, epochs = len(data.x_train), int(spec["batch_size"]), int(spec["epochs"])
    checkpoint_every = spec.get("checkpoint_every") or None

    def checkpoint() -> None:
        meta["last_checkpoint"] = meta["global_step"]
        if ctx.shard == 0:
            meta["rng"] = rng_states(model)
            # every point up to the checkpoint is stored before it, so a resumed attempt (which
            # never redoes those steps) leaves no gap in the curve
            meta["loss_curve"] = curve.checkpoint()
            # skipped while Redis is out (the previous save's publish failing, raised here): a
            # restart then resumes from the previous one
            ctx.control(lambda: writer.submit(model.state_dict(), optimizer.state_dict(), meta))

    def report(epoch: int, changes: dict, event: str = "progress") -> None:
        if ctx.shard != 0:
            return
        curve.flush()  # the points land before the event that tells viewers to fetch them
        step = meta["global_step"]
        position = {"epoch": epoch + 1, "step": step, "steps_total": steps_total}
        changes = position | {"progress": step / steps_total} | changes
        # a stale attempt raises StaleAttemptError here; UNREACHABLE: this report is dropped,
        # the next carries on
        ctx.control(lambda: ctx.fence.update(changes, event=event))

    stopper = None
    if spec.get("early_stopping"):
        stopper = early_stopping_from_spec(spec["early_stopping"], data.x_val is not None)
        if meta.get("stopper"):
            stopper.best, stopper.best_epoch, stopper.waited = meta["stopper"]
    flat = FlatGradients(model.parameters())
    rows = SliceRows(data.x_train, data.y_train)
    every = int(spec.get("sync_every") or 1)
    local = LocalSGD(every, ctx.num_shards, ctx.shard) if every > 1 else None
    ctx.stop.supported = local is None  # between local-SGD syncs the replicas differ
    ignored = overlap_ignored(ctx, replica, flat, local is not None)
    if ignored and ctx.shard == 0:  # the spec asked for it: say why it does nothing here
        ctx.fence.log(ignored, ctx.shard)
    curve = _NoCurve()
    if ctx.shard == 0:
        curve = LossRecorder(ctx.fence, ctx.job_id, steps_total, meta["global_step"])
        curve.resume(meta.get("loss_curve"))
    last_report = 0.0
    stop_early = False
    huge_pages_advised = False
    ctx.agree_on_start(meta["global_step"])
    for epoch in range(meta["epoch"], epochs):
        epoch_started, comm_at_start = time.perf_counter(), ctx.comm_seconds
        batches = global_batches(
            n, batch_size, seed, epoch, min_batch_for(model.layers, ctx.num_shards)
        )
        samples_this_run = 0
        upcoming = None
        for b in range(meta["batch"], len(batches)):
            ctx.stop.step_top(meta["global_step"])
            ctx.check_flags_now_and_then()
            if ctx.stop.due():  # a worker of the attempt is stopping: save here and hand back
                _stop_here(ctx, meta, checkpoint, writer)
            ctx.stop.step_started()
            index = batches[b]
            mine = upcoming if upcoming is not None else _my_rows(index, ctx)
            upcoming = _my_rows(batches[b + 1], ctx) if b + 1 < len(batches) else None
            step = meta["global_step"]
            if local is None:
                prefetch = None if upcoming is None else rows.ahead(upcoming)
                my_rows = rows.get(mine)
                batch_loss = exact_step(
                    ctx, flat, replica, my_rows, len(index), step, epoch, prefetch
                )
                meta["epoch_loss_sum"] += batch_loss * len(index)
                meta["epoch_samples"] += len(index)
                synced = True
            else:
                batch_loss = local_step(replica, rows.get(mine), step, epoch)
                local.record(len(index), batch_loss)
                synced = local.due(step + 1, end_of_epoch=b == len(batches) - 1)
                if synced:
                    batch_loss, samples = local.sync(ctx.allreduce, f"w{step}", model, optimizer)
                    meta["epoch_loss_sum"] += batch_loss * samples
                    meta["epoch_samples"] += samples
            meta["global_step"] = step + 1
            meta["batch"] = b + 1
            samples_this_run += len(index)
            curve.add(meta["global_step"], batch_loss)
            if not huge_pages_advised:  # the first step mapped every BLAS buffer it will use
                huge_pages_advised = True
                log.info("BLAS buffers on huge pages: %d MiB advised", advise_huge_pages() >> 20)
            if ctx.step_hook is not None:
                ctx.step_hook(meta["global_step"])
            if synced and checkpoint_every and _crossed_multiple(meta, checkpoint_every):
                checkpoint()
            now = time.monotonic()
            if now - last_report >= PROGRESS_EVERY_SECONDS:
                last_report = now
                report(epoch, {"train_loss": batch_loss})

        _average_buffers(ctx, model, epoch)
        seconds = time.perf_counter() - epoch_started
        entry = {
            "epoch": epoch + 1,
            "train_loss": meta["epoch_loss_sum"] / max(meta["epoch_samples"], 1),
            "val_loss": None,
            "val_accuracy": None,
            "seconds": seconds,
            "samples_per_second": samples_this_run / seconds if seconds > 0 else None,
            "comm_seconds": ctx.comm_seconds - comm_at_start,
            "transport": ctx.transport,
            "overlap": overlap_in_use(ctx, replica, flat),
        }
        if data.x_val is not None and len(data.x_val):
            part = shard_slice(len(data.x_val), ctx.num_shards, ctx.shard)
            sums = evaluate_sums(model, loss, data.x_val[part], data.y_val[part])
            sums = ctx.allreduce(f"val{epoch}", sums, [1.0] * ctx.num_shards) * ctx.num_shards
            entry["val_loss"] = sums[0] / sums[2]
            entry["val_accuracy"] = accuracy_from_sums(sums)
        meta["history"].append(entry)
        if stopper is not None:
            stop_early = stopper.update(epoch, entry, model)
            meta["stopper"] = [stopper.best, stopper.best_epoch, stopper.waited]
        meta.update(epoch=epoch + 1, batch=0, epoch_loss_sum=0.0, epoch_samples=0)
        checkpoint()
        report(epoch, {"history": meta["history"], "train_loss": entry["train_loss"]}, "epoch")
        if stop_early:
            break

    if stopper is not None and stopper.best_state is not None:
        model.load_state_dict(stopper.best_state)  # like nnlib.fit: keep the best epoch's weights
    if ctx.shard != 0:
        return {}
    curve.flush(final_step=meta["global_step"])
    writer.wait()  # the last checkpoint is published (or its error raised) before the model
    return finish_job(ctx, replica, loss, data, stop_early)


class _NoCurve:
    """Shards other than 0 record no loss curve."""

    def add(self, step: int, loss) -> None:
        pass

    def flush(self, final_step: int | None = None) -> None:
        pass

    def checkpoint(self) -> None:
        return None


def _average_buffers(ctx: ShardContext, model, epoch: int) -> None:
    """Make batchnorm running statistics identical on all replicas (their mean)."""
    buffers = model.buffers()
    if not buffers or ctx.num_shards == 1:
        return
    flat = FlatGradients(buffers, extra=0)
    flat.pack(buffers)
    ctx.allreduce(f"buf{epoch}", flat.buffer, [1.0] * ctx.num_shards)
    for name, array in buffers.items():
        np.copyto(array, flat.views[name])


def _stop_here(ctx: ShardContext, meta: dict, checkpoint, writer: CheckpointWriter):
    """The planned stop (``worker.planned_stop``) at the top of its step: shard 0 saves the
    state as the periodic save would here, then requeues the attempt uncounted; the others wait
    for that requeue (or, if it does not come, requeue themselves). Raises WorkerStoppingError."""
    step = meta["global_step"]
    if ctx.shard == 0:
        if meta.get("last_checkpoint") != step:  # an epoch end just saved this very state
            checkpoint()
        try:
            writer.wait()  # published before the requeue: the next attempt resumes from it
            ctx.fence.log(f"stopping at step {step}: checkpoint saved", ctx.shard)
        except Exception as error:  # noqa: BLE001 - the stop goes on; resume is from an older one
            ctx.fence.log(f"stopping at step {step}: checkpoint failed ({error})", 0, "warning")
        ctx.hand_back()
    elif not ctx.stop.wait_for_requeue():
        ctx.hand_back()
    raise WorkerStoppingError(f"stopped at step {step}: {ctx.stop.reason()}")


def _crossed_multiple(meta: dict, every: int) -> bool:
    """Has the global step reached a multiple of ``every`` since the last checkpoint? Counting
    from each epoch's end instead put "every 200" at 1666 and 1688; a multiple passed between
    local SGD syncs (no consistent state to save) is caught at the next synced step."""
    return meta["global_step"] // every > meta.get("last_checkpoint", 0) // every


def _my_rows(index: np.ndarray, ctx: ShardContext) -> np.ndarray:
    """This shard's sample indices of a global batch."""
    return index[shard_slice(len(index), ctx.num_shards, ctx.shard)]
