"""``gradq up`` brings the stack up, says so, and leaves no process behind on SIGINT/SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.harness import REPO_ROOT, free_port, process_alive, wait_until, worker_env

pytestmark = pytest.mark.integration


def _descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(child) for child in out.split()]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_up_serves_then_stops_every_process_it_started(tmp_path, stop_signal):
    api_port, redis_port = free_port(), free_port()
    log = tmp_path / "up.log"
    with open(log, "w") as out:
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli.main",
                "up",
                "--no-demo",
                "--workers",
                "1",
                "--port",
                str(api_port),
                "--redis-port",
                str(redis_port),
                "--state-dir",
                str(tmp_path / "state"),
            ],
            cwd=REPO_ROOT,
            # a forced BLAS core (as some machines' environments set) is said before the steps
            env=worker_env("redis://unused", OPENBLAS_CORETYPE="Haswell"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "API ready" in log.read_text() or up.poll() is not None,
            90,
            "gradq up to say the API is ready",
        )
        assert up.poll() is None, log.read_text()
        assert "note: OPENBLAS_CORETYPE=Haswell is set" in log.read_text()
        assert httpx.get(f"http://127.0.0.1:{api_port}/healthz").status_code == 200
        wait_until(lambda: "interactive API docs" in log.read_text(), 30, "the closing line")
        assert f"dashboard: http://127.0.0.1:{api_port}/ui " in log.read_text()
        store = worker_env("redis://unused")["GRADQ_ARTIFACT_URL"]  # the test's own store
        ready_line = next(line for line in log.read_text().splitlines() if "API ready" in line)
        started = _descendants(up.pid)
        assert len(started) >= 4  # redis, 2 celery masters (+ pool children), uvicorn

        up.send_signal(stop_signal)
        up.wait(60)

        assert up.returncode == 0, log.read_text()
        wait_until(lambda: not any(process_alive(pid) for pid in started), 15, "children to exit")
        assert f"artifacts in {store})" in ready_line  # where the user's models will be
        # the seconds before "ready" say what is happening, one line per step
        steps = [line.split("] ", 1)[-1] for line in log.read_text().splitlines()]
        assert steps[steps.index(ready_line) - 3 : steps.index(ready_line)] == [
            f"starting redis-server on 127.0.0.1:{redis_port} (data in {tmp_path}/state/redis)",
            "starting Celery workers: 1 training process(es) and 1 control process",
            f"starting the API on 127.0.0.1:{api_port} and waiting for it to answer",
        ]
    finally:
        if up.poll() is None:
            up.kill()


def test_up_refuses_an_open_address_without_keys_before_starting_anything(tmp_path):
    env = worker_env("redis://unused")
    env.pop("GRADQ_API_KEYS", None)
    env.pop("GRADQ_API_KEYS_FILE", None)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli.main",
            "up",
            "--host",
            "0.0.0.0",
            "--no-demo",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "refusing to serve without API keys on 0.0.0.0" in " ".join(result.stdout.split())
    assert not (tmp_path / "state" / "logs").exists()  # nothing was started


def test_the_demo_uses_the_client_key_else_the_first_served_key():
    from api.cli.up import demo_key
    from worker.config import Settings

    assert demo_key(Settings(api_key="mine", api_keys="a:served-a")) == "mine"
    assert demo_key(Settings(api_key=None, api_keys="a:served-a, b:served-b")) == "served-a"
    assert demo_key(Settings(api_key=None, api_keys=None)) is None


def test_up_says_when_the_environment_forces_the_workers_blas_kernels():
    from api.cli.up import forced_blas_note

    note = forced_blas_note({"OPENBLAS_CORETYPE": "Haswell"})
    assert "OPENBLAS_CORETYPE=Haswell" in note and "Haswell kernels" in note
    assert forced_blas_note({}) is None and forced_blas_note({"OPENBLAS_CORETYPE": ""}) is None


def test_up_runs_the_demo_job_to_a_prediction(tmp_path):
    log = tmp_path / "up.log"
    with open(log, "w") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "api.cli.main", "up", "--workers", "2",
             "--port", str(free_port()), "--redis-port", str(free_port()),
             "--state-dir", str(tmp_path / "state")],
            cwd=REPO_ROOT, env=worker_env("redis://unused"), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: "interactive API docs" in log.read_text() or up.poll() is not None,
                   180, "the demo to finish")  # fmt: skip
        text = " ".join(log.read_text().split())

        assert "test accuracy 0.9" in text, text
        assert "prediction for a handwritten 8: 8" in text, text
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)


def _start_up(tmp_path, *args: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "up.log"
    with open(log, "w") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "api.cli.main", "up", "--no-demo", "--workers", "1",
             "--state-dir", str(tmp_path / "state"), *args],
            cwd=REPO_ROOT, env=worker_env("redis://unused"), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return up, log


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def test_up_restarts_a_killed_child_and_a_sigkilled_up_leaves_no_process(tmp_path):
    api_port = free_port()
    up, log = _start_up(tmp_path, "--port", str(api_port), "--redis-port", str(free_port()))
    try:
        wait_until(lambda: "API ready" in log.read_text() or up.poll() is not None, 90, "ready")
        assert up.poll() is None, log.read_text()
        # the Celery main process (a child of gradq up), not one of its pool processes
        training = next(p for p in _children(up.pid) if "training@" in _command_line(p))

        os.kill(training, signal.SIGKILL)
        wait_until(lambda: "worker-training restarted" in log.read_text(), 30, "the restart")
        text = log.read_text()
        assert "worker-training was killed by SIGKILL; restarting it in 1 s" in text
        assert up.poll() is None  # the stack stayed up
        assert httpx.get(f"http://127.0.0.1:{api_port}/healthz").status_code == 200
        started = _descendants(up.pid)
        assert any("training@" in _command_line(p) for p in started)

        up.kill()  # no handler runs: only the parent-death signal can stop the children
        up.wait(10)
        wait_until(lambda: not any(process_alive(pid) for pid in started), 30, "orphans to exit")
    finally:
        if up.poll() is None:
            up.kill()


def test_up_names_a_port_in_use_and_starts_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up, log = _start_up(tmp_path, "--port", str(port), "--redis-port", str(free_port()))
        up.wait(60)

    lines = log.read_text().splitlines()
    assert up.returncode == 1
    assert (
        f"port {port} on 127.0.0.1 (for the API) is already in use: stop what holds it"
        " (an earlier gradq up?) or pick another with --port"
    ) in lines  # one line: off a terminal, not folded at 80 columns
    assert not (tmp_path / "state" / "logs").exists()  # nothing was started
