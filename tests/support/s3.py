"""A real S3-compatible server for tests: moto's standalone server, in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.processes import BASE_ENV_KEYS, free_port

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"


class MotoServer:
    """`moto_server` on 127.0.0.1; stop() and start() again on the same port (a store outage:
    moto keeps its data in memory, so buckets are made again on start)."""

    def __init__(self, log_path: Path, buckets: tuple[str, ...] = ("archive",)) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.buckets = buckets
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> MotoServer:
        env = {k: v for k, v in os.environ.items() if k in BASE_ENV_KEYS}
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{self.url}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"moto did not start:\n{self.log_path.read_text()}"
                    ) from None
                time.sleep(0.1)
        for bucket in self.buckets:
            httpx.put(f"{self.url}/{bucket}", timeout=5).raise_for_status()
        return self

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def objects(self, bucket: str = "archive") -> str:
        """The bucket's listing (XML), to see what was stored."""
        return httpx.get(f"{self.url}/{bucket}", timeout=5).text

    def settings(self, bucket: str = "archive", prefix: str = "images") -> dict[str, str]:
        """The service's settings for this store, by their Settings field names."""
        return {
            "archive_url": f"s3://{bucket}/{prefix}",
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "aws_region": REGION,
            "aws_endpoint_url": self.url,
        }
