"""Job records as the dashboard's pages show them: table rows, timelines, spec diffs."""

from __future__ import annotations

import json

from api.routers.jobs import job_view
from worker.jobs import events_key, utc_now

TIMELINE_TYPES = (b'{"type": "created"', b'{"type": "status"')


def row_view(record: dict) -> dict:
    """One jobs-table row: the API's view plus the best validation and the test accuracy."""
    view = job_view(record)
    accuracies = [
        e["val_accuracy"]
        for e in view.get("history") or []
        if isinstance(e.get("val_accuracy"), int | float)
    ]
    view["best_val_accuracy"] = max(accuracies) if accuracies else None
    view["test_accuracy"] = (view.get("metrics") or {}).get("test_accuracy")
    view["active"] = view["status"] in ("queued", "running", "cancelling")
    return view


def timeline(redis, job_id: str) -> tuple[list[dict], str | None]:
    """The job's state changes in order (created, running, restarts with reasons, the end), and
    the id of the stream's last event read (the page's live feed starts after it, so a change
    between rendering and connecting is not lost; None for an empty stream).

    Read from its events stream; progress and epoch entries are skipped by their prefix before
    any JSON is parsed, so a long job's thousands of progress events cost little.
    """
    entries, last_id = [], None
    for _event_id, fields in redis.xrange(events_key(job_id)):
        last_id = _event_id.decode()
        raw = fields.get(b"data", b"")
        if not raw.startswith(TIMELINE_TYPES):
            continue
        event = json.loads(raw)
        entries.append(
            {
                "status": "queued" if event["type"] == "created" else event.get("status"),
                "reason": event.get("status_reason"),
                "at": _event_time(_event_id),
            }
        )
    return entries, last_id


def _event_time(event_id: bytes) -> str:
    return utc_now(int(event_id.split(b"-", 1)[0]) / 1000)


def flatten(value, prefix: str = "") -> dict[str, str]:
    """Nested spec -> ``{"model.layers[0].units": "64", ...}`` (values as compact JSON)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: json.dumps(value)}


def spec_diff(specs: list[dict]) -> list[tuple[str, list[str]]]:
    """Fields whose values differ between the specs: ``(path, [value per spec, "—" if absent])``."""
    flat = [flatten(spec or {}) for spec in specs]
    paths = sorted({path for f in flat for path in f})
    rows = []
    for path in paths:
        values = [f.get(path, "—") for f in flat]
        if len(set(values)) > 1:
            rows.append((path, values))
    return rows


def final_metrics(record: dict) -> dict:
    """Best and last value of each per-epoch series, plus the test metrics."""
    history = record.get("history") or []
    out: dict = {}
    for name, best in (("train_loss", min), ("val_loss", min), ("val_accuracy", max)):
        values = [e[name] for e in history if isinstance(e.get(name), int | float)]
        out[name] = {
            "best": best(values) if values else None,
            "last": values[-1] if values else None,
        }
    metrics = record.get("metrics") or {}
    out["test_loss"] = metrics.get("test_loss")
    out["test_accuracy"] = metrics.get("test_accuracy")
    return out
