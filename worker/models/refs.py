"""Model references: the one place that says what ``{ref}`` may be wherever a model id is taken.

- ``mdl_<hex>``          a model id (one stored version)
- ``name@alias``         the version an alias of ``name`` points at now (``digits@production``)
- ``name/versions/n``    version ``n`` of ``name`` (versions count up from 1 per tenant and name)
Names follow the job spec's ``name`` rule; aliases are short identifiers that cannot be numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_PATTERN = r"[\w .:-]{1,100}"  # the job spec's name rule (api.schemas.spec.JobSpec.name)
ALIAS_PATTERN = r"[A-Za-z_][\w-]{0,63}"
MODEL_ID_PATTERN = r"mdl_[0-9a-f]{16}"
MAX_VERSION = 10**9
_ID = re.compile(rf"^{MODEL_ID_PATTERN}$")
_ALIAS_REF = re.compile(rf"^(?P<name>{NAME_PATTERN})@(?P<alias>{ALIAS_PATTERN})$")
_VERSION_REF = re.compile(rf"^(?P<name>{NAME_PATTERN})/versions/(?P<version>[1-9]\d{{0,8}})$")
NAME = re.compile(rf"^{NAME_PATTERN}$")
ALIAS = re.compile(rf"^{ALIAS_PATTERN}$")


class ModelRefError(ValueError):
    """Not a model reference; the message shows the value and the accepted forms."""


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of ``model_id``, (``name``, ``alias``), (``name``,
    ``version``) is set; ``name`` alone (``latest``) means the highest version."""

    text: str
    model_id: str | None = None
    name: str | None = None
    alias: str | None = None
    version: int | None = None


def parse_model_ref(text: str, allow_bare_name: bool = False) -> ModelRef:
    """``text`` -> ModelRef; ModelRefError naming the value and the forms accepted.

    ``allow_bare_name``: a plain name means its latest version (the Open Inference Protocol's
    ``/v2/models/{name}``); elsewhere a bare word must be a model id.
    """
    if not isinstance(text, str) or len(text) > 200:
        raise ModelRefError(f"model reference {text!r}: expected a string of at most 200 chars")
    if _ID.match(text):
        return ModelRef(text, model_id=text)
    if match := _ALIAS_REF.match(text):
        return ModelRef(text, name=match["name"], alias=match["alias"])
    if match := _VERSION_REF.match(text):
        return ModelRef(text, name=match["name"], version=int(match["version"]))
    if allow_bare_name and NAME.match(text) and "/" not in text:
        return ModelRef(text, name=text)
    raise ModelRefError(
        f"model reference {text!r}: expected a model id (mdl_ + 16 hex digits), "
        "NAME@ALIAS or NAME/versions/N"
    )


def check_alias(alias: str) -> str:
    """``alias`` if it is a valid alias name, else ModelRefError naming it."""
    if not ALIAS.match(alias):
        raise ModelRefError(
            f"alias {alias!r}: expected a letter or _ then up to 63 letters, digits, _ or -"
        )
    return alias


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ModelRefError(
            f"name {name!r}: expected 1-100 letters, digits, spaces, '.', ':', '_' or '-'"
        )
    return name
