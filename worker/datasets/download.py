"""HTTP(S) downloads verified by SHA-256 and published atomically.

The body is streamed into a temporary file in the destination folder and renamed over the
destination only once its digest matches, so concurrent readers (and a second worker downloading
the same file) see either no file or the complete, verified one; never a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from worker.datasets.base import DatasetError

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60.0
# the largest published file is 26 MB; a mirror sending more is broken or hostile (disk filling)
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024


class DownloadError(DatasetError):
    """A download failed or its content does not match the expected SHA-256."""


def download(
    url: str,
    destination: Path,
    sha256: str,
    timeout: float = TIMEOUT_SECONDS,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> Path:
    """Fetch ``url`` into ``destination`` if its SHA-256 is ``sha256``; return ``destination``.

    On any failure (network, HTTP status, more than ``max_bytes``, digest mismatch) nothing is
    left behind and ``DownloadError`` names the URL and the problem.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
    )
    tmp = Path(tmp_name)
    try:
        digest, received = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "gradq"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                while chunk := response.read(CHUNK_BYTES):
                    received += len(chunk)
                    if received > max_bytes:
                        raise DownloadError(f"{url}: more than {max_bytes} bytes, refused")
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256.lower():
            raise DownloadError(
                f"{url}: SHA-256 mismatch (expected {sha256}, got {digest.hexdigest()})"
            )
        os.replace(tmp, destination)
    except DownloadError:
        tmp.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"{url}: {_describe(exc)}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(destination.parent)
    return destination


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    return f"{type(exc).__name__}: {exc}"


def _fsync_dir(folder: Path) -> None:
    # make the rename itself durable; not possible on every platform, hence best effort
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
