""" "Did you mean" for a field the API does not know (pydantic's ``extra_forbidden`` error).

A typo (``epoch``, ``batchsize``, ``unit``) or another library's name for a setting
(``learning_rate`` for ``lr``) is refused with the field's path; the answer also names the field
the client most likely meant: the closest property name of the API's request schemas (difflib's
ratio of at least ``CUTOFF``), or the gradq name of a setting other libraries spell differently.
"""

from __future__ import annotations

import difflib

from fastapi import FastAPI

CUTOFF = 0.75
# What PyTorch, Keras and scikit-learn users write for gradq's names (only where difflib cannot
# see it: the words differ, not the spelling).
SYNONYMS = {
    "learning_rate": "lr",
    "learningrate": "lr",
    "n_epochs": "epochs",
    "num_epochs": "epochs",
    "max_epochs": "epochs",
    "max_iter": "epochs",
    "neurons": "units",
    "out_features": "units",
    "hidden_size": "units",
    "n_units": "units",
    "out_channels": "filters",
    "loss_function": "loss",
    "criterion": "loss",
    "optim": "optimizer",
    "num_shards": "shards",
    "workers": "shards",
    "random_state": "seed",
}


def suggest(name: str, app: FastAPI) -> str | None:
    """The field ``name`` was most likely meant to be, or None."""
    if name in SYNONYMS:
        return SYNONYMS[name]
    # the name itself may be a field elsewhere (``epoch`` is one of a job's record): not here
    fields = [field for field in _request_fields(app) if field != name]
    close = difflib.get_close_matches(name, fields, n=1, cutoff=CUTOFF)
    return close[0] if close else None


def _request_fields(app: FastAPI) -> tuple[str, ...]:
    """Every property name of the schemas in the app's OpenAPI document (computed once per app,
    on the first unknown field: building the document takes tens of milliseconds)."""
    fields = getattr(app.state, "request_fields", None)
    if fields is None:
        schemas = app.openapi().get("components", {}).get("schemas", {})
        names = {prop for schema in schemas.values() for prop in schema.get("properties", {})}
        fields = app.state.request_fields = tuple(sorted(names))
    return fields
