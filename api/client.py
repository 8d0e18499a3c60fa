"""``GradqClient``: the Python client of the REST API (the CLI is built on it)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from api.error_locations import field_path


class ApiError(RuntimeError):
    """An error answer of the API: ``status`` and its ``detail``. The message has one line per
    validation error, ``HTTP 422: model.layers[2].units: <message>``."""

    def __init__(self, status: int, detail: Any):
        super().__init__("\n".join(f"HTTP {status}: {line}" for line in detail_lines(detail)))
        self.status = status
        self.detail = detail


def detail_lines(detail: Any) -> list[str]:
    """An error ``detail`` as readable lines: FastAPI's list of ``{"loc", "msg"}`` gives one
    ``field.path: message`` each; anything else is one line."""
    if isinstance(detail, list) and detail and all(isinstance(e, dict) for e in detail):
        return [f"{field_path(e.get('loc') or [])}: {e.get('msg', '')}" for e in detail]
    return [str(detail)]


def _detail(response: httpx.Response) -> Any:
    """The ``detail`` of an error answer; its text when not FastAPI's JSON (a proxy's page)."""
    try:
        return response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text


class ApiUnreachableError(ApiError):
    """No answer at all: nothing listens at the URL, DNS failed, the connection dropped."""

    def __init__(self, base_url: str, error: httpx.TransportError):
        cause = str(error) or type(error).__name__
        RuntimeError.__init__(
            self, f"cannot reach the API at {base_url} ({cause}); is it running? (GRADQ_API_URL)"
        )
        self.status, self.detail = 0, cause


class SseEvent(NamedTuple):
    """One Server-Sent Event: ``id`` is its stream id (``None`` for ``shutdown``/``error``, which
    leave a reconnecting client's cursor where it was), ``name`` its type, ``data`` its JSON."""

    id: str | None
    name: str
    data: dict


# Event streams send a keep-alive comment every 15 s, so a minute of silence is a dead
# connection (a cut network, a suspended host) rather than a quiet job.
STREAM_READ_TIMEOUT = 60.0


class GradqClient:
    """Thin wrapper of the ``/v1`` endpoints; every method returns the decoded JSON body."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GradqClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ApiUnreachableError(str(self._http.base_url), error) from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    # jobs
    def submit(self, spec: dict) -> dict:
        return self._call("POST", "/v1/jobs", json=spec)

    def job(self, job_id: str) -> dict:
        return self._call("GET", f"/v1/jobs/{job_id}")

    def jobs(self, status: str | None = None, limit: int = 50, cursor: str | None = None) -> dict:
        params = {
            "limit": limit,
            **({"status": status} if status else {}),
            **({"cursor": cursor} if cursor else {}),
        }
        return self._call("GET", "/v1/jobs", params=params)

    def metrics(self, job_id: str, format: str = "json", max_points: int = 1000) -> dict | bytes:
        """The job's curves: JSON columns (dict), or CSV bytes with ``format="csv"``."""
        params = {"format": format, "max_points": max_points}
        return self._call("GET", f"/v1/jobs/{job_id}/metrics", params=params)

    def cancel(self, job_id: str) -> dict:
        return self._call("POST", f"/v1/jobs/{job_id}/cancel")

    def events(self, job_id: str) -> Iterator[tuple[str, dict]]:
        """``(event name, data)`` pairs of the job's SSE stream until it ends."""
        with self.open_events(f"/v1/jobs/{job_id}/events") as stream:
            for event in stream:
                yield event.name, event.data

    @contextlib.contextmanager
    def open_events(
        self, path: str, last_event_id: str | None = None, params: dict | None = None
    ) -> Iterator[Iterator[SseEvent]]:
        """Open the SSE stream at ``path`` with query ``params`` (after ``last_event_id`` if
        given); the context value iterates its events until the server closes it. Opening raises
        ApiError for an error answer; opening or reading raises ApiUnreachableError when the
        connection fails."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        timeout = httpx.Timeout(STREAM_READ_TIMEOUT, connect=self._http.timeout.connect)
        request = {"headers": headers, "params": params, "timeout": timeout}
        try:
            with self._http.stream("GET", path, **request) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(response.status_code, _detail(response))
                yield self._read_events(response)
        except httpx.TransportError as error:
            raise ApiUnreachableError(str(self._http.base_url), error) from None

    def _read_events(self, response: httpx.Response) -> Iterator[SseEvent]:
        try:
            event_id, name, data = None, "message", []
            for line in response.iter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    yield SseEvent(event_id, name, json.loads("\n".join(data)))
                    event_id, name, data = None, "message", []
        except httpx.TransportError as error:
            raise ApiUnreachableError(str(self._http.base_url), error) from None

    # studies
    def create_study(self, study: dict) -> dict:
        return self._call("POST", "/v1/studies", json=study)

    def study(self, study_id: str) -> dict:
        return self._call("GET", f"/v1/studies/{study_id}")

    def studies(self, limit: int = 50, cursor: str | None = None) -> dict:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._call("GET", "/v1/studies", params=params)

    def patch_study(self, study_id: str, **changes) -> dict:
        return self._call("PATCH", f"/v1/studies/{study_id}", json=changes)

    def cancel_study(self, study_id: str) -> dict:
        return self._call("POST", f"/v1/studies/{study_id}/cancel")

    def study_events(self, study_id: str) -> Iterator[tuple[str, dict]]:
        """``(event name, data)`` pairs of the study's SSE stream until it ends."""
        with self.open_events(f"/v1/studies/{study_id}/events") as stream:
            for event in stream:
                yield event.name, event.data

    # models
    def models(self, limit: int = 100, cursor: str | None = None) -> dict:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._call("GET", "/v1/models", params=params)

    def model(self, model_id: str) -> dict:
        return self._call("GET", f"/v1/models/{model_id}")

    def weights(self, model_id: str) -> bytes:
        return self._call("GET", f"/v1/models/{model_id}/weights")

    def delete_model(self, model_id: str) -> None:
        self._call("DELETE", f"/v1/models/{model_id}")

    def predict(self, model_id: str, inputs: Any) -> dict:
        return self._call("POST", f"/v1/models/{model_id}/predict", json={"inputs": inputs})

    def predict_image(self, model_id: str, path: Path) -> dict:
        with open(path, "rb") as image:
            files = {"file": (Path(path).name, image, "application/octet-stream")}
            return self._call("POST", f"/v1/models/{model_id}/predict", files=files)

    # data sets
    def upload_dataset(self, path: Path, label_column: str | None = None) -> dict:
        data = {"label_column": label_column} if label_column else None
        with open(path, "rb") as content:
            files = {"file": (Path(path).name, content, "application/octet-stream")}
            return self._call("POST", "/v1/datasets", files=files, data=data)

    def datasets(self) -> dict:
        return self._call("GET", "/v1/datasets")

    def dataset(self, dataset_id: str) -> dict:
        return self._call("GET", f"/v1/datasets/{dataset_id}")

    def delete_dataset(self, dataset_id: str) -> None:
        self._call("DELETE", f"/v1/datasets/{dataset_id}")

    # job lifecycle
    def delete_job(self, job_id: str, delete_model: bool = False) -> None:
        params = {"delete_model": "true"} if delete_model else None
        self._call("DELETE", f"/v1/jobs/{job_id}", params=params)

    def resume(self, job_id: str, epochs: int | None = None) -> dict:
        body = {"epochs": epochs} if epochs is not None else None
        return self._call("POST", f"/v1/jobs/{job_id}/resume", json=body)

    def logs(self, job_id: str, cursor: str | None = None, limit: int = 1000) -> dict:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._call("GET", f"/v1/jobs/{job_id}/logs", params=params)

    def follow_logs(self, job_id: str) -> Iterator[dict]:
        """Every log line of the job, then new ones until it ends."""
        path = f"/v1/jobs/{job_id}/logs"
        with self._http.stream("GET", path, params={"follow": "true"}, timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, response.json().get("detail"))
            name = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:") and name == "log":
                    yield json.loads(line[5:])

    # registry
    def registry_names(self, limit: int = 100, cursor: str | None = None) -> dict:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._call("GET", "/v1/registry", params=params)

    def registry(self, name: str) -> dict:
        return self._call("GET", f"/v1/registry/{name}")

    def set_alias(self, name: str, alias: str, version: int) -> dict:
        return self._call("PUT", f"/v1/registry/{name}/aliases/{alias}", json={"version": version})

    def delete_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", f"/v1/registry/{name}/aliases/{alias}")

    def update_model(self, ref: str, tags: dict | None = None, description: str | None = None):
        body = {k: v for k, v in (("tags", tags), ("description", description)) if v is not None}
        return self._call("PATCH", f"/v1/models/{ref}", json=body)

    def export(self, ref: str, format: str = "onnx") -> bytes:  # noqa: A002 - the API's name
        return self._call("GET", f"/v1/models/{ref}/export", params={"format": format})

    def upload_model(self, path: Path, name: str | None = None) -> dict:
        data = {"name": name} if name else None
        with open(path, "rb") as content:
            files = {"file": (Path(path).name, content, "application/octet-stream")}
            return self._call("POST", "/v1/models", files=files, data=data)
