"""Several "hosts" on one machine: network namespaces on a bridge, each with its own hostname
and /dev/shm, links shaped with ``tc ... tbf``, cut and restored at will (needs root).

A host is one holder process started with ``unshare --net --uts --mount``: it sets the hostname,
mounts a private tmpfs on /dev/shm and sleeps; every process of the host enters its namespaces
with ``nsenter``. The host's end of a veth pair lives in its namespace as ``eth0`` with an
address from 198.18.0.0/15 (RFC 2544, reserved for network benchmarks); the other end joins a
bridge that also carries an address, so this (root) namespace reaches every host. Nothing else
is touched: no route, address or firewall rule outside the interfaces created here. ``close``
kills the host's processes and its holder (the kernel then deletes the namespace and its veth
pair) and deletes the bridge.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.harness import REPO_ROOT, redis_answers, stop_process_group, wait_until, worker_env

NETWORK = ipaddress.ip_network("198.18.0.0/15")
BURST_SECONDS = 0.002  # tbf bucket: 2 ms of traffic at the link's rate (>= a few MTUs)


def missing_privileges() -> str | None:
    """Why this process cannot build hosts (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, tc); CI runs these tests as root"
    for tool in ("ip", "tc", "unshare", "nsenter", "redis-server"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (iproute2, util-linux, redis-server)"
    return None


def run(*argv: str) -> str:
    """Run a command; raise with its stderr when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def tbf_args(rate_mbit: float) -> list[str]:
    """``tc qdisc replace ... root`` arguments for a token bucket of ``rate_mbit`` Mbit/s."""
    burst = max(int(rate_mbit * 1e6 / 8 * BURST_SECONDS), 32 * 1024)
    return ["tbf", "rate", f"{rate_mbit}mbit", "burst", str(burst), "latency", "100ms"]


class Host:
    """One host: its namespaces (held by ``holder``), address, link and processes."""

    def __init__(self, cluster: Cluster, index: int, name: str):
        self.cluster, self.index, self.name = cluster, index, name
        self.address = str(cluster.subnet[index + 1])
        self.link = f"{cluster.tag}h{index}"  # the bridge's end of this host's veth pair
        self.processes: list[subprocess.Popen] = []
        script = (
            f"hostname {name} && mount -t tmpfs -o size=512m,mode=1777 gradq-shm /dev/shm && "
            "ip link set lo up && echo ready && exec sleep infinity"
        )
        self.holder = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--uts",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
            ],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        if self.holder.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"host {name}'s namespaces could not be set up")
        peer = f"{cluster.tag}n{index}"
        run("ip", "link", "add", self.link, "type", "veth", "peer", "name", peer)
        run("ip", "link", "set", peer, "netns", str(self.holder.pid))
        run("ip", "link", "set", self.link, "master", cluster.bridge, "up")
        self.inside("ip", "link", "set", peer, "name", "eth0")
        self.inside(
            "ip", "addr", "add", f"{self.address}/{cluster.subnet.prefixlen}", "dev", "eth0"
        )
        self.inside("ip", "link", "set", "eth0", "up")

    def argv(self, *argv: str) -> list[str]:
        """``argv`` run inside this host's network, UTS and mount namespaces."""
        pid = str(self.holder.pid)
        return ["nsenter", "-t", pid, "-n", "-u", "-m", "--", *argv]

    def inside(self, *argv: str) -> str:
        return run(*self.argv(*argv))

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` on this host (own session, killed by ``close``)."""
        kwargs.setdefault("start_new_session", True)
        process = subprocess.Popen(self.argv(*argv), **kwargs)
        self.processes.append(process)
        return process

    def shape(self, rate_mbit: float | None) -> None:
        """Limit both directions of this host's link to ``rate_mbit`` (None: unlimited)."""
        for prefix, device in (([], self.link), (self.argv(), "eth0")):
            if rate_mbit is None:
                subprocess.run([*prefix, "tc", "qdisc", "del", "dev", device, "root"], check=False)
            else:
                run(*prefix, "tc", "qdisc", "replace", "dev", device, "root", *tbf_args(rate_mbit))

    def cut(self) -> None:
        """Unplug the link: nothing reaches or leaves the host until ``restore``."""
        run("ip", "link", "set", self.link, "down")

    def restore(self) -> None:
        run("ip", "link", "set", self.link, "up")

    def close(self) -> None:
        # deleting one end deletes the pair now (namespace teardown deletes it only eventually)
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, check=False)
        for process in [*self.processes, self.holder]:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait(10)


class Cluster:
    """``count`` hosts named ``<prefix>0..`` on one bridge, every link at ``rate_mbit``.

    Each cluster gets its own random tag (interface names) and /24 inside 198.18.0.0/15, so two
    clusters (a test and a benchmark) can coexist. Use as a context manager.
    """

    def __init__(self, count: int, rate_mbit: float | None = None, prefix: str = "host"):
        reason = missing_privileges()
        if reason:
            raise PermissionError(reason)
        self.tag = "gq" + secrets.token_hex(3)
        self.bridge = f"{self.tag}br"
        self.subnet = self._free_subnet()
        self.hosts: list[Host] = []
        try:
            run("ip", "link", "add", self.bridge, "type", "bridge")
            bridge_address = f"{self.subnet[254]}/{self.subnet.prefixlen}"
            run("ip", "addr", "add", bridge_address, "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
            for index in range(count):
                self.add_host(f"{prefix}{index}", rate_mbit)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _free_subnet() -> ipaddress.IPv4Network:
        used = run("ip", "-4", "route", "show")
        while True:
            subnet = list(NETWORK.subnets(new_prefix=24))[secrets.randbelow(512)]
            if str(subnet) not in used:
                return subnet

    def add_host(self, name: str, rate_mbit: float | None = None) -> Host:
        host = Host(self, len(self.hosts), name)
        self.hosts.append(host)
        if rate_mbit is not None:
            host.shape(rate_mbit)
        return host

    def shape(self, rate_mbit: float | None) -> None:
        for host in self.hosts:
            host.shape(rate_mbit)

    def close(self) -> None:
        """Kill every process on every host, delete the namespaces, the veths and the bridge."""
        for host in self.hosts:
            host.close()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        self.hosts = []

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HostRedis:
    """A redis-server on ``host``, bound to the host's address only (the job control plane)."""

    PORT = 16379  # inside the host's own network namespace: never the machine's 6379

    def __init__(self, host: Host, workdir: Path):
        import redis

        workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.url = f"redis://{host.address}:{self.PORT}/0"
        self.process = host.popen(
            [shutil.which("redis-server"), "--port", str(self.PORT), "--bind", host.address,
             "--dir", str(workdir), "--save", "", "--appendonly", "no",
             "--protected-mode", "no", "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=2)
        wait_until(
            lambda: redis_answers(self.client, self.process), 10, f"redis-server on {host.name}"
        )


class HostWorker:
    """A real Celery worker (prefork pool) on ``host``: its shards see the host's hostname,
    address and /dev/shm."""

    def __init__(self, host: Host, redis_url: str, log_path: Path, concurrency: int = 1, **env):
        from api.cli.worker_command import celery_worker_argv
        from worker.celery_app import CONTROL_QUEUE, TRAINING_QUEUE

        self.host = host
        self.name = f"w{secrets.token_hex(3)}@{host.name}"
        argv = celery_worker_argv(f"{TRAINING_QUEUE},{CONTROL_QUEUE}", concurrency, self.name)
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = host.popen(
                argv,
                cwd=REPO_ROOT,
                env=worker_env(redis_url, **env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_process_group(self.process, grace=15)


def python_argv(*args: str) -> list[str]:
    """This interpreter, for programs run on a host."""
    return [sys.executable, *args]
