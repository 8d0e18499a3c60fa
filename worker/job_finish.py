"""The end of a job that trained to its last epoch: shard 0 evaluates the test set, stores the
model as the next version of its registry name and marks the job succeeded, all through the
attempt's fence, so a stale attempt publishes nothing."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from worker.job_logs import queue_log_line
from worker.models_store import ModelStore
from worker.recovery import AttemptAbortedError
from worker.replica import accuracy_from_sums, evaluate_sums
from worker.shard_context import ShardContext
from worker.storage.checkpoints import checkpoint_keys, remove_objects

if TYPE_CHECKING:  # worker.shard imports this module
    from worker.shard import Replica

log = logging.getLogger("gradq.job")


def finish_job(ctx: ShardContext, replica: Replica, loss, data, stopped_early: bool) -> dict:
    """Shard 0: test metrics, then publish the model and mark the job succeeded in one fenced
    transaction (a stale attempt publishes no model), then drop the job's checkpoints."""
    model = replica.model
    metrics = {}
    if data.x_test is not None and len(data.x_test):
        sums = evaluate_sums(model, loss, data.x_test, data.y_test)
        metrics["test_loss"] = sums[0] / sums[2]
        metrics["test_accuracy"] = accuracy_from_sums(sums)
    record = ctx.store.get(ctx.job_id)
    models = ModelStore(ctx.store.redis, replica.artifacts)
    tenant = record["tenant"]
    name = record["spec"].get("model_name") or record.get("name") or "model"
    # the number is taken while the attempt is current (a later refusal leaves a gap, as a
    # deleted version does), so the uploaded file already carries it
    (version,) = ctx.fence.commit(
        lambda pipe: models.registry.queue_next_version(pipe, tenant, name)
    )
    pending = models.upload(
        model,
        tenant=tenant,
        job_id=ctx.job_id,
        name=name,
        version=int(version),
        dataset=record["spec"].get("dataset"),
        preprocessing=data.preprocessing,
        classes=data.classes,
        num_classes=data.num_classes,
        label_column=data.label_column,
        metrics=metrics,
    )
    saved = pending.metadata
    reason = "stopped early: no improvement" if stopped_early else None
    changes = {"metrics": metrics, "model_id": saved["id"], "progress": 1.0}
    line = f"training finished; model {saved['id']} is {name} version {saved['version']}"

    def publish(pipe) -> None:  # the model and the job's last log line land with the success
        models.publish(pending, pipe)
        queue_log_line(pipe, ctx.job_id, line, ctx.shard, "info")

    checkpoints = checkpoint_keys(replica.artifacts, ctx.job_id)  # the transition drops the list
    final = ctx.fence.update(
        changes, event="status", status="succeeded", reason=reason, also=publish
    )
    if final is None:  # e.g. cancelling -> succeeded refused: the model was not published
        raise AttemptAbortedError("the job finished elsewhere before it could succeed")
    log.info("job %s shard %s: %s", ctx.job_id, ctx.shard, line)
    # a succeeded job has its model: its checkpoints only cost space now
    remove_objects(replica.artifacts, checkpoints)
    return final
