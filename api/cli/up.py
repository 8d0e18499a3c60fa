"""``gradq up``: the whole stack on this machine, a demo job, and a clean stop on Ctrl-C."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli.output import make_console
from api.cli.stack import LocalStack, PortInUseError, StackConfig
from api.serve import InsecureBindError, check_bind
from worker.config import get_settings


class _StopRequested(Exception):
    """Raised from the SIGINT/SIGTERM handler to unwind into the cleanup path."""


def _raise_stop(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _StopRequested(signal.Signals(signum).name)


class _Narrator:
    """One line per step, stamped with the seconds since start (the first run is silent
    otherwise while Redis, Celery and uvicorn start)."""

    def __init__(self, console: Console):
        self.console, self.started = console, time.monotonic()

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(f"[{elapsed:5.1f}s] {message}", markup=False, highlight=False)


def up(
    host: Annotated[str, typer.Option(help="API bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    workers: Annotated[int, typer.Option(help="training worker processes")] = 2,
    redis_url: Annotated[
        str | None, typer.Option(help="use this Redis instead of starting one")
    ] = None,
    redis_port: Annotated[int, typer.Option(help="port of the Redis gradq starts")] = 6390,
    state_dir: Annotated[Path, typer.Option(help="logs, Redis data, artifacts")] = Path(".state"),
    no_demo: Annotated[bool, typer.Option("--no-demo", help="skip the demo job")] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="allow no API keys on a non-loopback --host")
    ] = False,
) -> None:
    """Start Redis, Celery workers and the API; run the demo job; keep running until Ctrl-C."""
    console = make_console()  # off a terminal (a log, systemd) no message is folded at 80 columns
    if workers < 1:
        raise typer.BadParameter(f"--workers must be >= 1, got {workers}")
    stack = LocalStack(StackConfig(host, port, workers, redis_url, redis_port, state_dir, insecure))
    try:
        # refuse an unauthenticated non-loopback bind before starting anything
        console.print(check_bind(host, get_settings(), insecure), markup=False)
    except InsecureBindError as error:
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(2) from None
    try:
        stack.check_ports()
    except PortInUseError as error:
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(1) from None
    forced = forced_blas_note(os.environ)
    if forced:  # a setting of this machine, said with the other settings before the steps
        console.print(forced, style="yellow", markup=False)
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    say = _Narrator(console)
    try:
        if redis_url:
            say(f"using Redis at {redis_url}")
        else:
            say(f"starting redis-server on 127.0.0.1:{redis_port} (data in {state_dir / 'redis'})")
        stack.start_redis()
        say(f"starting Celery workers: {workers} training process(es) and 1 control process")
        stack.start_workers()
        say(f"starting the API on {host}:{port} and waiting for it to answer")
        stack.start_api()
        console.print(
            f"gradq API ready at {stack.api_url} (Redis {stack.redis_url}, "
            f"{workers} training workers, logs in {state_dir / 'logs'}, "
            f"artifacts in {stack.artifact_url})",
            soft_wrap=True,  # one line, never folded inside a URL someone copies
        )
        if not no_demo:
            from api.cli.demo import run_demo

            run_demo(stack.api_url, console, demo_key(get_settings()))
        console.print(
            f"dashboard: {stack.api_url}/ui · interactive API docs: {stack.api_url}/docs"
            " — Ctrl-C stops the stack",
            soft_wrap=True,
        )
        while True:  # restart what exits, with backoff, until Ctrl-C / SIGTERM
            stack.supervise(say)
            time.sleep(0.2)
    except _StopRequested as stop:
        console.print(f"{stop}: stopping the stack")
    except typer.Exit:
        raise  # a RuntimeError too: printing it was the stray "1" of an exiting stack
    except RuntimeError as error:
        console.print(f"[red]{error}")
        raise typer.Exit(1) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        console.print("stopped")


def forced_blas_note(environ) -> str | None:
    """The start-up line when ``OPENBLAS_CORETYPE`` forces the workers' BLAS kernels (they
    inherit it): on an AVX-512 CPU, Haswell's ran GEMMs at half the speed of the ones OpenBLAS
    picks (README, "BLAS kernels"). Each worker's log says so too, but nobody reads it first."""
    core = environ.get("OPENBLAS_CORETYPE")
    if not core:
        return None
    return (
        f"note: OPENBLAS_CORETYPE={core} is set, so the workers train on OpenBLAS's {core}"
        " kernels, not the ones it would pick for this CPU; unset it unless you set it on purpose"
    )


def demo_key(settings) -> str | None:
    """The key the demo job is sent with: ``GRADQ_API_KEY``, else the first ``GRADQ_API_KEYS``
    pair's key (its tenant then finds the demo on the dashboard); None without keys.

    With keys served but no client key set, the demo failed with a 401 right after the stack
    said it was ready."""
    if settings.api_key:
        return settings.api_key
    for item in (settings.api_keys or "").split(","):
        _tenant, sep, key = item.strip().partition(":")
        if sep and key:
            return key
    return None


def register(app: typer.Typer) -> None:
    """Add ``gradq up`` to the app."""
    app.command()(up)
