"""``gradq submit --wait`` rides out an API restart (real ``gradq`` process, real uvicorn stopped
and started again on the same port, real Redis; the worker is played through the JobStore, since
only the API goes away): it reconnects with ``Last-Event-ID``, so no epoch is lost or repeated,
and it gives up with one line and exit 1 when the API stays away."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import pytest

from tests.api.live import LiveApi
from tests.api.specs import digits_spec
from tests.harness import REPO_ROOT, wait_until, worker_env
from worker.jobs import JobStore

pytestmark = pytest.mark.integration
KEY = "reconnect-key-0123456789"


class Gradq:
    """``gradq ARGS`` as a child process; ``stdout``/``stderr`` grow as it prints."""

    def __init__(self, *args: str, **env: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli.main", *args],
            cwd=REPO_ROOT,
            env=worker_env("redis://unused", **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout, self.stderr = "", ""
        self._readers = [
            threading.Thread(target=self._read, args=(name,), daemon=True)
            for name in ("stdout", "stderr")
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str) -> None:
        for line in getattr(self.process, name):
            setattr(self, name, getattr(self, name) + line)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def api(redis_url, tmp_path):
    server = LiveApi(redis_url, tmp_path / "api.log", GRADQ_API_KEYS=f"cli:{KEY}")
    yield server
    server.stop()


def submit_and_wait(api: LiveApi, tmp_path, **env: str) -> Gradq:
    (tmp_path / "spec.json").write_text(json.dumps(digits_spec(epochs=3)))
    env = {"GRADQ_API_URL": api.url, "GRADQ_API_KEY": KEY, **env}
    return Gradq("submit", str(tmp_path / "spec.json"), "--wait", **env)


def play_epoch(store: JobStore, job_id: str, epoch: int) -> None:
    history = [{"epoch": e, "train_loss": 1 / e, "seconds": 1.0} for e in range(1, epoch + 1)]
    store.update(job_id, {"epoch": epoch, "step": 30 * epoch, "steps_total": 90,
                          "history": history}, event="epoch")  # fmt: skip


def running_job(cli: Gradq, store: JobStore) -> str:
    """The submitted job, made to run its first epoch once the CLI follows it."""
    wait_until(lambda: "submitted job_" in cli.stdout, 30, "the submit")
    job_id = cli.stdout.split("submitted ", 1)[1].split()[0]
    wait_until(lambda: "status queued" in cli.stdout, 30, "the CLI to follow the job")
    store.transition(job_id, "running")
    play_epoch(store, job_id, 1)
    wait_until(lambda: "epoch 1/3:" in cli.stdout, 30, "the first epoch line")
    return job_id


def stop(api: LiveApi, how: str) -> None:
    if how == "graceful":  # SIGTERM: the stream ends with a `shutdown` event
        api.stop()
    else:  # SIGKILL: the connection just drops
        api.process.send_signal(signal.SIGKILL)
        api.process.wait(10)


@pytest.mark.parametrize("how", ["graceful", "killed"])
def test_submit_wait_reconnects_after_an_api_restart_and_misses_no_epoch(
    api, redis_client, tmp_path, how
):
    store = JobStore(redis_client)
    cli = submit_and_wait(api, tmp_path)
    try:
        job_id = running_job(cli, store)

        stop(api, how)
        wait_until(lambda: "reconnecting" in cli.stderr, 30, "the CLI to notice")
        for epoch in (2, 3):  # the job goes on while the API is away
            play_epoch(store, job_id, epoch)
        store.transition(job_id, "succeeded")
        api.start()  # same port
        code = cli.wait(60)
    finally:
        cli.kill()

    assert code == 0, (cli.stdout, cli.stderr)
    lines = cli.stdout.splitlines()
    for epoch in (1, 2, 3):  # each exactly once: the CLI resumed after the last event it had
        assert sum(line.startswith(f"epoch {epoch}/3:") for line in lines) == 1, lines
    assert lines[-1] == f"{job_id}: succeeded at step 90/90"
    assert cli.stderr.splitlines() == [
        "API went away; reconnecting (for up to 120 s)...",
        "reconnected",
    ]


def test_submit_wait_gives_up_with_one_line_when_the_api_stays_away(api, redis_client, tmp_path):
    store = JobStore(redis_client)
    cli = submit_and_wait(api, tmp_path, GRADQ_CLI_RECONNECT_SECONDS="2")
    try:
        job_id = running_job(cli, store)

        stop(api, "graceful")
        code = cli.wait(30)
    finally:
        cli.kill()

    assert code == 1
    errors = cli.stderr.splitlines()
    assert errors[0] == "API went away; reconnecting (for up to 2 s)..."
    assert errors[1].startswith(
        f"error the API did not come back in 2 s (last: cannot reach the API at {api.url}"
    )
    assert errors[1].endswith(f"; the job keeps running: gradq watch {job_id}")
    assert len(errors) == 2 and "Traceback" not in cli.stdout
    assert store.get(job_id)["status"] == "running"


def test_study_create_wait_reconnects_after_an_api_restart(api, redis_client, tmp_path):
    from tests.studies.conftest import digits_study
    from worker.studies.store import StudyStore

    store = StudyStore(redis_client)
    (tmp_path / "study.json").write_text(json.dumps(digits_study(max_trials=1)))
    env = {"GRADQ_API_URL": api.url, "GRADQ_API_KEY": KEY}
    cli = Gradq("study", "create", str(tmp_path / "study.json"), "--wait", **env)
    params = {"optimizer.lr": 0.01, "model.layers[0].units": 16}
    row = {"trial": 0, "state": "running", "value": None, "epochs": 0, "params": params,
           "job_id": "job_0123456789abcdef"}  # fmt: skip
    try:
        wait_until(lambda: "created study_" in cli.stdout, 30, "the study")
        study_id = cli.stdout.split("created ", 1)[1].split()[0]
        wait_until(lambda: redis_client.info("clients")["blocked_clients"] >= 1, 30, "a reader")
        store.publish(study_id, "trial", row)
        wait_until(lambda: "trial 0 running" in cli.stdout, 30, "the first trial line")

        stop(api, "graceful")
        wait_until(lambda: "reconnecting" in cli.stderr, 30, "the CLI to notice")
        store.publish(study_id, "trial", row | {"state": "complete", "value": 0.95, "epochs": 3})
        best = {"trial": 0, "value": 0.95, "params": params, "job_id": row["job_id"]}
        trials = [row | {"state": "complete", "value": 0.95, "epochs": 3}]
        store.update(study_id, {"status": "succeeded", "best_trial": best, "trials": trials})
        api.start()
        code = cli.wait(60)
    finally:
        cli.kill()

    assert code == 0, (cli.stdout, cli.stderr)
    lines = cli.stdout.splitlines()
    assert sum(line.startswith("trial 0 complete epochs 3 value 0.9500") for line in lines) == 1
    assert (
        lines[-1] == "best: trial 0 value 0.9500 params optimizer.lr=0.01, model.layers[0].units=16"
    )
    assert cli.stderr.splitlines() == [
        "API went away; reconnecting (for up to 120 s)...",
        "reconnected",
    ]


def test_watch_waits_out_a_redis_outage_behind_the_api(tmp_path):
    """Redis stops (SIGTERM: its append-only file keeps the job): the stream ends with an
    ``error`` event, reconnections get 503 until Redis is back, then the stream resumes."""
    from tests.harness import RedisServer

    redis_server = RedisServer(tmp_path / "redis", appendonly=True)
    api = LiveApi(redis_server.url, tmp_path / "api.log", GRADQ_API_KEYS=f"cli:{KEY}")
    store = JobStore(redis_server.client)
    job_id = store.create(digits_spec(epochs=3), "cli")["id"]
    store.transition(job_id, "running")
    cli = Gradq("watch", job_id, GRADQ_API_URL=api.url, GRADQ_API_KEY=KEY)
    try:
        wait_until(lambda: "status running" in cli.stdout, 30, "the CLI to follow the job")
        play_epoch(store, job_id, 1)
        wait_until(lambda: "epoch 1/3:" in cli.stdout, 30, "the first epoch line")

        redis_server.kill(signal.SIGTERM)
        wait_until(lambda: "reconnecting" in cli.stderr, 30, "the CLI to notice")
        redis_server.start()
        for epoch in (2, 3):
            play_epoch(store, job_id, epoch)
        store.transition(job_id, "succeeded")
        code = cli.wait(60)
    finally:
        cli.kill()
        api.stop()
        redis_server.stop()

    assert code == 0, (cli.stdout, cli.stderr)
    lines = cli.stdout.splitlines()
    for epoch in (1, 2, 3):
        assert sum(line.startswith(f"epoch {epoch}/3:") for line in lines) == 1, lines
    assert cli.stderr.splitlines() == [
        "API lost its Redis; reconnecting (for up to 120 s)...",
        "reconnected",
    ]


def test_logs_follow_resumes_after_the_last_line_it_printed_across_an_api_restart(
    api, redis_client
):
    from worker.job_logs import job_log

    store = JobStore(redis_client)
    job_id = store.create(digits_spec(epochs=3), "cli")["id"]
    store.transition(job_id, "running")
    job_log(redis_client, job_id, "line one", 0)
    cli = Gradq("logs", job_id, "-f", GRADQ_API_URL=api.url, GRADQ_API_KEY=KEY)
    try:
        wait_until(lambda: "line one" in cli.stdout, 30, "the first line")

        stop(api, "graceful")
        wait_until(lambda: "reconnecting" in cli.stderr, 30, "the CLI to notice")
        job_log(redis_client, job_id, "line two", 0)
        store.transition(job_id, "succeeded")
        api.start()
        code = cli.wait(60)
    finally:
        cli.kill()

    assert code == 0, (cli.stdout, cli.stderr)
    messages = [line.rsplit("info", 1)[-1].strip() for line in cli.stdout.splitlines()]
    assert messages == ["line one", "line two"]
    assert cli.stderr.splitlines() == [
        "API went away; reconnecting (for up to 120 s)...",
        "reconnected",
    ]
