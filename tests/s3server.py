"""A real S3-compatible server on loopback for tests and benchmarks: moto's server mode
(`moto[server]`) in its own process, behind a small TCP relay that counts the bytes the
server sends, can slow them down, can stop answering (a hung endpoint) and can be shut
down mid-transfer (a server that goes away)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Relay:
    """Forwards 127.0.0.1:port to the server; counts and optionally throttles replies."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.bytes_down = 0
        self.rate: float | None = None  # bytes/s from server to client; None: unthrottled
        self.hang = False  # accept, read, never answer
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.hang:
            with self._lock:
                self._open.add(client)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.update((client, upstream))
        threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
        self._pipe(upstream, client, True)

    def _pipe(self, source: socket.socket, sink: socket.socket, down: bool) -> None:
        try:
            while True:
                chunk = source.recv(1 << 16 if not (down and self.rate) else 16384)
                if not chunk:
                    break
                if down:
                    if self.rate:
                        time.sleep(len(chunk) / self.rate)
                    with self._lock:
                        self.bytes_down += len(chunk)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def stop(self) -> None:
        """Stop listening and break every open connection (the server went away)."""
        self._stopped = True
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class S3Server:
    """moto's S3 server on a free loopback port and a Relay in front of it."""

    def __init__(self, log_path: str | None = None) -> None:
        self.port = free_port()
        log = open(log_path or os.devnull, "wb")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.2)
        self.relay = Relay(self.port)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.relay.port}"

    @property
    def direct_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.direct_endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]

    def env(self, bucket: str, prefix: str = "metaflow") -> dict[str, str]:
        """What Metaflow and devd need to use this server as a team's S3 datastore."""
        return {
            "METAFLOW_DEFAULT_DATASTORE": "s3",
            "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{bucket}/{prefix}",
            "METAFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def close(self) -> None:
        self.relay.stop()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
