"""Property: no JSON body a client can send gets a 5xx or an answer that is not strict JSON.

Hypothesis builds hostile bodies the schema-driven fuzzer (test_openapi.py) never sends: NaN,
Infinity and 1e999 literals, integers of hundreds of digits, nesting thousands deep, arrays of
hundreds of thousands of items, strings holding lone UTF-16 surrogates, placed anywhere in a
valid job spec or prediction body, and sent to every kind of JSON route.
"""

from __future__ import annotations

import copy
import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.deps import get_submitter
from tests.api.conftest import KEY_A
from tests.api.models_fixture import store_digits_model
from tests.api.specs import digits_spec
from tests.api.strict import parse_strictly
from worker.jobs import JobStore

OVERFLOW = "__overflow__"  # replaced by the literal 1e999 after encoding
FIELD_NAMES = ["type", "units", "lr", "layers", "inputs", "name", "id", "rate", "betas", "epochs"]
FIELD_NAMES += ["description", "tags", "version", "base_spec", "datatype", "data"]
SPEC_PATHS = [
    ("name",),
    ("epochs",),
    ("overlap",),
    ("dataset",),
    ("dataset", "validation_split"),
    ("model", "layers"),
    ("model", "layers", 1),
    ("model", "layers", 1, "units"),
    ("optimizer", "lr"),
    ("optimizer",),
    ("early_stopping",),
    ("seed",),
]
leaves = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([OVERFLOW, 2**63, 2**64, 1e39, -3.5e38, 3.4e38, 0, True, None, ""]),
    st.text(max_size=10),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),  # lone surrogates
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=24,
)


def encode(document) -> bytes:
    text = json.dumps(document, allow_nan=True)  # writes NaN and Infinity literals on purpose
    return text.replace(json.dumps(OVERFLOW), "1e999").encode()


@st.composite
def spec_bodies(draw) -> bytes:
    spec = copy.deepcopy(digits_spec())
    path = draw(st.sampled_from(SPEC_PATHS))
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = draw(leaves | values)  # a bare leaf is echoed as given by a 422
    return encode(spec)


@st.composite
def deep_bodies(draw) -> bytes:
    depth = draw(st.integers(min_value=1, max_value=5000))
    core = encode(draw(values))
    opener = draw(st.sampled_from([b"[", b'{"inputs": [', b'{"a": ']))
    closer = {b"[": b"]", b'{"inputs": [': b"]}", b'{"a": ': b"}"}[opener]
    return opener * depth + core + closer * depth


@st.composite
def huge_bodies(draw) -> bytes:
    size = draw(st.sampled_from([64, 4096, 300_000]))
    item = draw(st.sampled_from(["0", "1e39", "NaN", '{"type": "relu"}', "[0, 0]", "9" * 50]))
    array = ("[" + ", ".join([item] * size) + "]").encode()
    wrapper = draw(st.sampled_from([b'{"inputs": %s}', b'{"model": {"layers": %s}}', b"%s"]))
    return wrapper % array


bodies = st.one_of(
    spec_bodies(),
    values.map(lambda v: encode({"inputs": v})),
    values.map(encode),
    deep_bodies(),
    huge_bodies(),
)


@pytest.fixture
def client(settings_roomy, redis_client):
    app = create_app(settings_roomy)
    app.dependency_overrides[get_submitter] = lambda: JobStore(app.state.redis).create
    with TestClient(app, headers={"Authorization": f"Bearer {KEY_A}"}) as test_client:
        yield test_client


@pytest.fixture
def settings_roomy(settings):
    """Bodies up to 4 MB (so huge arrays are parsed, not refused by size), no job limit."""
    return settings.model_copy(
        update={"max_request_bytes": 4 * 1024 * 1024, "max_active_jobs_per_tenant": 10**6}
    )


@pytest.mark.filterwarnings("ignore")
def test_hostile_json_never_gets_a_5xx_or_a_non_strict_json_answer(client, redis_client):
    flat = store_digits_model(redis_client, "alice")["id"]
    image = store_digits_model(redis_client, "alice", as_image=True)["id"]
    job = JobStore(redis_client).create(digits_spec(), "alice")["id"]
    paths = ["/v1/jobs", f"/v1/models/{flat}/predict", f"/v1/models/{image}/predict"]
    for path in paths[1:]:  # cached: the prediction fast path sees the bodies first
        client.post(path, json={"inputs": [0.0] * 64})
    routes = [("POST", path) for path in paths] + [
        ("PATCH", f"/v1/models/{flat}"),
        ("PUT", "/v1/registry/digits-mlp/aliases/best"),
        ("POST", f"/v1/jobs/{job}/resume"),
        ("POST", "/v1/studies"),
        ("POST", f"/v2/models/{flat}/infer"),
    ]

    @given(body=bodies, route=st.sampled_from(routes))
    @settings(
        max_examples=300,
        derandomize=True,  # the same bodies on every run: a CI failure reproduces
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(body: bytes, route: tuple[str, str]):
        method, path = route
        headers = {"Content-Type": "application/json"}
        response = client.request(method, path, content=body, headers=headers)
        assert response.status_code < 500, (route, body[:200], response.text[:300])
        parse_strictly(response.content)  # raises on NaN, Infinity or bad JSON

    send()
