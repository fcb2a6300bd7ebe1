"""Metaflow's real metadata service on loopback for tests and benchmarks: PostgreSQL from
Debian's package (as a non-root user, a temporary data directory, a free port), the
service's schema applied from its migration files, and Netflix/metaflow-service's
``services.metadata_service.server`` in its own venv; a relay in front of it counts every
HTTP request (method and path) and can refuse requests without an API key, as the gateway a
team puts in front of the service does.

The service's source is not on PyPI: ``make mdservice`` unpacks it from
../shared/vendor/metaflow-service-91e44f0.tar.gz into .cache/mdservice (DEVD_MDSERVICE) and
builds its venv there. Without it, ``unavailable()`` says how to get it (tests skip).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.s3server import free_port

ROOT = Path(__file__).resolve().parents[1]
PG_USER = "devdpg"  # PostgreSQL refuses to run as root


def service_dir() -> Path:
    return Path(os.environ.get("DEVD_MDSERVICE") or ROOT / ".cache" / "mdservice")


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(re.sub(r"\D", "", p.split("/")[4]) or 0))
    return Path(found[-1]).parent if found else None


def unavailable() -> str | None:
    """Why the service cannot run here (one line saying how to get it), or None."""
    base = service_dir()
    if not list(base.glob(".ready-*")):
        return (f"Metaflow's metadata service is not prepared in {base}: run `make mdservice` "
                "(it needs ../shared/vendor/metaflow-service-91e44f0.tar.gz next to the repo or "
                "the checkout it was cloned from, or MDSERVICE_TGZ=...; Netflix/"
                "metaflow-service at 91e44f0)")
    if _pg_bin() is None:
        return ("PostgreSQL is not installed: `apt-get install postgresql` (or `make mdservice` "
                "as root)")
    if os.geteuid() != 0 and not os.access(base, os.W_OK):
        return f"{base} is not writable"
    return None


class CountingRelay:
    """Forwards 127.0.0.1:port to the service and records each request's method and path.

    It parses request heads (and skips bodies by Content-Length) on the way in, answering
    ``Expect: 100-continue`` itself; replies are piped through unparsed. With ``down`` set it
    closes each new connection unanswered (a service gone away). With ``api_key`` set, a
    request without ``x-api-key: <key>`` gets 403 and the connection is closed, as an API
    gateway answers."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[tuple[str, str]] = []
        self.api_key: str | None = None
        self.down = False  # close every connection at once: the service went away
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def since(self, start: int) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.requests[start:])

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.down:
            client.close()
            return
        upstream: socket.socket | None = None
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = [*lines[0].split(" "), "", ""][:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:])}
                with self._lock:
                    self.requests.append((method, path))
                if self.api_key is not None and headers.get("x-api-key") != self.api_key:
                    message = b'{"message":"Forbidden"}'
                    client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                                   b"Connection: close\r\nContent-Length: "
                                   + str(len(message)).encode() + b"\r\n\r\n" + message)
                    return
                if headers.get("expect", "").lower() == "100-continue":
                    # The client sends the body only once told to (boto3's PUTs do this; the
                    # body is read below before the head goes on): say so here and drop the
                    # header, or each PUT waits out boto's 1 s 100-continue timeout.
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    kept = [ln for ln in lines if not ln.lower().startswith("expect:")]
                    head = "\r\n".join(kept).encode("latin-1")
                length = int(headers.get("content-length", "0") or 0)
                while len(buffer) < length:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.target_port))
                    with self._lock:
                        self._open.update((client, upstream))
                    threading.Thread(target=self._pipe, args=(upstream, client),
                                     daemon=True).start()
                upstream.sendall(head + b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _ensure_pg_user() -> tuple[int, int] | None:
    """The uid/gid PostgreSQL runs as: a system user made once when running as root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", PG_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(PG_USER)
    return entry.pw_uid, entry.pw_gid


def _up_part(sql: str) -> str:
    """The ``-- +goose Up`` part of a goose migration file."""
    up = sql.split("-- +goose Up", 1)[-1]
    return up.split("-- +goose Down", 1)[0]


def _migration_number(path: Path) -> int:
    return int(path.name.split("_", 1)[0])


class MetadataService:
    """PostgreSQL + Metaflow's metadata service + a counting relay, all on loopback."""

    def __init__(self) -> None:
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        base = service_dir()
        self.src = base / "src"
        self.python = base / "venv" / "bin" / "python"
        self.pg_bin = _pg_bin()
        assert self.pg_bin is not None
        self.dir = Path(tempfile.mkdtemp(prefix="devd-mdservice-"))
        self.dir.chmod(0o755)
        ids = _ensure_pg_user()
        self._ids = ids
        self.password = secrets.token_hex(12)
        self.pg_port = free_port()
        self.pg: subprocess.Popen[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self._start_postgres()
            self._create_database()
            self._start_service()
        except BaseException:
            self.close()
            raise
        self.relay = CountingRelay(self.port)

    # -- PostgreSQL --------------------------------------------------------------
    def _as_pg(self) -> dict[str, object]:
        if self._ids is None:
            return {}
        return {"user": self._ids[0], "group": self._ids[1], "extra_groups": []}

    def _start_postgres(self) -> None:
        data = self.dir / "data"
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self._ids is not None:
            os.chown(self.dir, *self._ids)
            os.chown(pwfile, *self._ids)
        log = open(self.dir / "postgres.log", "wb")  # noqa: SIM115 - the process keeps it
        subprocess.run([str(self.pg_bin / "initdb"), "-D", str(data), "-U", "postgres",
                        f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8",
                        "--locale=C.UTF-8"], check=True, stdout=log, stderr=subprocess.STDOUT,
                       cwd=self.dir, **self._as_pg())  # type: ignore[call-overload]
        self.pg = subprocess.Popen(
            [str(self.pg_bin / "postgres"), "-D", str(data), "-p", str(self.pg_port),
             "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir,
            **self._as_pg())  # type: ignore[call-overload]
        deadline = time.monotonic() + 60
        while subprocess.run([str(self.pg_bin / "pg_isready"), "-h", "127.0.0.1", "-p",
                              str(self.pg_port)], capture_output=True).returncode != 0:
            if self.pg.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start: "
                                   + (self.dir / "postgres.log").read_text()[-2000:])
            time.sleep(0.2)

    def _psql(self, user: str, database: str, sql: str) -> None:
        env = {**os.environ, "PGPASSWORD": self.password}
        proc = subprocess.run([str(self.pg_bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                               "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", user,
                               "-d", database], input=sql, text=True, capture_output=True,
                              env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()[-2000:]}")

    def _create_database(self) -> None:
        self._psql("postgres", "postgres",
                   f"CREATE ROLE metaflow LOGIN PASSWORD '{self.password}';\n"
                   "CREATE DATABASE metaflow OWNER metaflow;\n")
        files = sorted((self.src / "services" / "migration_service" / "migration_files")
                       .glob("*.sql"), key=_migration_number)
        assert files, "no migration files in the service's source"
        for path in files:  # one by one: some run CREATE INDEX CONCURRENTLY
            self._psql("metaflow", "metaflow", _up_part(path.read_text()))

    # -- the service ---------------------------------------------------------------
    def _start_service(self) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.lower().endswith("_proxy") and not k.startswith(("METAFLOW_", "PYTHON"))}
        env.update(MF_METADATA_DB_HOST="127.0.0.1", MF_METADATA_DB_PORT=str(self.pg_port),
                   MF_METADATA_DB_USER="metaflow", MF_METADATA_DB_PSWD=self.password,
                   MF_METADATA_DB_NAME="metaflow", MF_METADATA_HOST="127.0.0.1",
                   MF_METADATA_PORT=str(self.port), LOGLEVEL="INFO")
        self.log_path = self.dir / "service.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(
            [str(self.python), "-m", "services.metadata_service.server"], env=env,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping",
                                            timeout=2) as reply:
                    if b"pong" in reply.read():
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the metadata service did not start: "
                                   + self.log_path.read_text()[-2000:])
            time.sleep(0.2)

    @property
    def url(self) -> str:
        """The service's URL through the counting relay (what clients are given)."""
        return f"http://127.0.0.1:{self.relay.port}/"

    def env(self) -> dict[str, str]:
        """What Metaflow and devd need to record runs in this service."""
        return {"METAFLOW_DEFAULT_METADATA": "service", "METAFLOW_SERVICE_URL": self.url,
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

    def close(self) -> None:
        relay = getattr(self, "relay", None)
        if relay is not None:
            relay.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.pg is not None and self.pg.poll() is None:
            self.pg.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.pg.wait(30)
            except subprocess.TimeoutExpired:
                self.pg.kill()
                self.pg.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
