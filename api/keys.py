"""API keys: generated once, stored only as SHA-256 hashes, each bound to one tenant.

Keys are 256-bit random tokens, so an unsalted SHA-256 is enough (nothing to brute-force); a lookup
compares the hash against every stored one with ``hmac.compare_digest``. The keys file holds one
``<tenant> <sha256 hex>`` per line and is re-read when it changes, so ``gradq keys create`` takes
effect without a restart. The ring fails closed: once it has held keys it never serves without
them, and a keys file that vanishes or gains a malformed line leaves the last good key set in
force (the error is logged) instead of opening the API or failing every request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path

TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_TENANT = "default"
KEY_PREFIX = "gq_"
RELOAD_SECONDS = 1.0
log = logging.getLogger("gradq.api.keys")


def hash_key(key: str) -> str:
    """Hex SHA-256 of ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_tenant(tenant: str) -> str:
    if not TENANT_PATTERN.match(tenant):
        raise ValueError(f"tenant {tenant!r} must match {TENANT_PATTERN.pattern}")
    return tenant


def create_key(keys_file: Path, tenant: str) -> str:
    """Append a new key for ``tenant`` to ``keys_file`` (mode 0600) and return it (never stored)."""
    check_tenant(tenant)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(keys_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(f"{tenant} {hash_key(key)}\n")
    return key


def parse_keys_file(text: str) -> list[tuple[str, str]]:
    """``(tenant, hash)`` pairs of a keys file; blank lines and ``#`` comments skipped."""
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[1]):
            raise ValueError(f"keys file line {number}: expected '<tenant> <sha256 hex>'")
        pairs.append((check_tenant(parts[0]), parts[1]))
    return pairs


def parse_key_pairs(value: str | None) -> list[tuple[str, str]]:
    """``(tenant, hash)`` pairs from ``GRADQ_API_KEYS`` ("tenant:key,tenant:key")."""
    pairs = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        tenant, sep, key = item.partition(":")
        if not sep or not key:
            raise ValueError("GRADQ_API_KEYS: expected comma-separated 'tenant:key' pairs")
        pairs.append((check_tenant(tenant), hash_key(key)))
    return pairs


class KeyRing:
    """The configured keys (file + environment); ``tenant_for(key)`` answers a key's tenant."""

    def __init__(self, keys_file: Path | None = None, key_pairs: str | None = None):
        self._file = keys_file
        self._env_pairs = parse_key_pairs(key_pairs)
        self._file_pairs: list[tuple[str, str]] = []
        self._mtime: int | None = None
        self._checked = 0.0
        self._had_keys = False  # once true, never false again: the ring fails closed
        self._lock = threading.Lock()
        self._reload(strict=True)

    @property
    def configured(self) -> bool:
        """True when keys exist or ever existed (without keys the API runs without auth)."""
        self._maybe_reload()
        if self._env_pairs or self._file_pairs or self._file_exists():
            self._had_keys = True
        return self._had_keys

    def tenant_for(self, key: str) -> str | None:
        """The tenant owning ``key``, or None; every stored hash is compared in constant time."""
        self._maybe_reload()
        digest = hash_key(key)
        found = None
        for tenant, stored in self._env_pairs + self._file_pairs:
            if hmac.compare_digest(digest, stored):
                found = tenant
        return found

    def _file_exists(self) -> bool:
        return self._file is not None and self._file.exists()

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if self._file is not None and now - self._checked > RELOAD_SECONDS:
            self._reload()

    def _reload(self, strict: bool = False) -> None:
        """Re-read the file if it changed; ``strict`` (at start) raises instead of logging."""
        with self._lock:
            self._checked = time.monotonic()
            try:
                mtime = self._file.stat().st_mtime_ns if self._file_exists() else None
                if mtime == self._mtime:
                    return
                self._mtime = mtime  # a bad version is reported once, not on every request
                if mtime is None:
                    if self._file_pairs:
                        log.error(
                            "API keys file %s is gone; keeping its last %d keys",
                            self._file,
                            len(self._file_pairs),
                        )
                    return
                self._file_pairs = parse_keys_file(self._file.read_text())
                self._had_keys = self._had_keys or bool(self._file_pairs)
            except (OSError, ValueError, UnicodeDecodeError) as error:
                if strict:
                    raise ValueError(f"API keys file {self._file}: {error}") from None
                log.error("API keys file %s: %s; keeping the last good keys", self._file, error)
