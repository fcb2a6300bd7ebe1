"""Only the owner reaches the daemon: runtime directories, peer credentials, the TCP token.

The attacker is a real second Unix user, created for these tests (they run as root in CI)
and removed after; its side runs in a subprocess that drops to that user with os.setuid.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from devd.common.project import daemon_paths
from tests.otheruser import attacker, finish, wait_ready
from tests.wirehelp import Raw, cli, frame, log_text, make_project, request

# A fake daemon: bind the socket (after `drop()` unless told to bind first), answer every
# request with a made-up status and report what it received.
FAKE_DAEMON = """
    path, bind_first = sys.argv[3], sys.argv[4] == "bind-first"
    if not bind_first:
        drop()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.chmod(os.path.dirname(path), 0o777)
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o777)
    if bind_first:
        drop()  # the socket file is root's; the process listening is the other user's
    server.listen()
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        try:
            data = conn.recv(65536)
            if data:  # the client closed without a word: nothing to answer
                print("got", repr(data[:200]), flush=True)
                body = b'{"jsonrpc": "2.0", "id": 1, "result": {"pid": 1, "root": "/"}}'
                conn.sendall(b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body)
        except OSError:
            pass
        conn.close()
"""


def one_line_refusal(out: subprocess.CompletedProcess[str], words: str) -> None:
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert out.stderr.count("\n") == 1 and words in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def shared_dir() -> Path:
    """A directory every user may create entries in, like /tmp (mode 1777)."""
    path = Path(tempfile.mkdtemp(prefix="dvs"))
    path.chmod(0o1777)
    return path


@pytest.fixture(scope="module")
def sec_project(project: Path) -> Path:
    return make_project(project, ("linear_flow.py",), "dvsp", run=("linear_flow.py",))


def env_with(**values: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEVD_RUNTIME_DIR", "XDG_RUNTIME_DIR")}
    env["DEVD_IDLE_TIMEOUT"] = "120"
    for key, value in values.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def project_dir(env: dict[str, str], root: Path) -> Path:
    """The project's runtime directory under the runtime base ``env`` names."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return Path(daemon_paths(str(root)).directory)
    finally:
        os.environ.clear()
        os.environ.update(saved)


# -- item 12: runtime directories ----------------------------------------------------------

def test_a_project_directory_another_user_created_is_refused(other_user: tuple[int, int],
                                                             sec_project: Path) -> None:
    """Another user pre-creates <runtime>/<hash>/ and listens there: devd sends it nothing."""
    shared = shared_dir()
    env = env_with(DEVD_RUNTIME_DIR=str(shared))
    sock = project_dir(env, sec_project) / "sock"
    fake = attacker(other_user, FAKE_DAEMON, str(sock), "drop-first")
    try:
        wait_ready(fake)
        for args in (("status", str(sec_project)), ("spin", "linear_flow.py", "double"),
                     ("run", "linear_flow.py"), ("daemon", "start", str(sec_project)),
                     ("daemon", "stop", str(sec_project))):
            one_line_refusal(cli(sec_project, *args, env=env), "belongs to another user")
    finally:
        received = finish(fake)
    assert "got" not in received, received


def test_a_tmp_directory_another_user_created_is_refused(other_user: tuple[int, int],
                                                         sec_project: Path) -> None:
    """The default /tmp/devd-<uid>, created first by someone else, is neither used nor
    chmodded."""
    tmp = shared_dir()
    env = env_with(TMPDIR=str(tmp))
    squat = tmp / f"devd-{os.getuid()}"
    proc = attacker(other_user, """
        drop()
        os.mkdir(sys.argv[3], 0o777)
        os.chmod(sys.argv[3], 0o777)
        print("ready", flush=True)
    """, str(squat))
    wait_ready(proc)
    proc.wait(10)
    before = os.stat(squat)
    one_line_refusal(cli(sec_project, "daemon", "start", str(sec_project), env=env),
                     "belongs to another user")
    after = os.stat(squat)
    assert (after.st_uid, after.st_mode) == (before.st_uid, before.st_mode)
    assert os.listdir(squat) == []


def test_a_shared_runtime_dir_is_never_chmodded(sec_project: Path) -> None:
    """DEVD_RUNTIME_DIR may name a shared sticky directory: devd keeps its own 0700
    directory inside it and leaves the shared one as it is."""
    shared = shared_dir()
    env = env_with(DEVD_RUNTIME_DIR=str(shared))
    out = cli(sec_project, "daemon", "start", str(sec_project), env=env)
    try:
        assert "daemon started" in out.stdout, out.stderr
        assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777
        own = project_dir(env, sec_project)
        assert stat.S_IMODE(os.stat(own).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(own / "sock").st_mode) == 0o600
        status = cli(sec_project, "status", "--json", env=env)
        assert json.loads(status.stdout)["pid"] > 0
    finally:
        cli(sec_project, "daemon", "stop", str(sec_project), env=env)


def test_an_own_directory_open_to_others_is_refused_not_repaired(sec_project: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="dvo"))
    env = env_with(DEVD_RUNTIME_DIR=str(base))
    own = project_dir(env, sec_project)
    own.mkdir(mode=0o700)
    own.chmod(0o777)
    one_line_refusal(cli(sec_project, "daemon", "start", str(sec_project), env=env),
                     "writable by other users")
    assert stat.S_IMODE(os.stat(own).st_mode) == 0o777  # reported, not changed
    own.rmdir()
    elsewhere = Path(tempfile.mkdtemp(prefix="dvo"))
    own.symlink_to(elsewhere)
    one_line_refusal(cli(sec_project, "daemon", "start", str(sec_project), env=env),
                     "is not a directory")
    assert os.listdir(elsewhere) == []
    # a base that is another user's business: writable by others and not sticky
    loose = Path(tempfile.mkdtemp(prefix="dvo"))
    loose.chmod(0o777)
    one_line_refusal(cli(sec_project, "daemon", "start", str(sec_project),
                         env=env_with(DEVD_RUNTIME_DIR=str(loose))), "not sticky")
    assert stat.S_IMODE(os.stat(loose).st_mode) == 0o777


# -- item 12: peer credentials -------------------------------------------------------------

def test_another_user_cannot_use_the_daemon_through_an_opened_socket(
        other_user: tuple[int, int], sec_project: Path, tmp_path: Path) -> None:
    """Even with every mode opened, the daemon closes connections of other users before
    reading anything: they cannot run code as the owner through an artifacts module."""
    base = Path(tempfile.mkdtemp(prefix="dvp"))
    env = env_with(DEVD_RUNTIME_DIR=str(base))
    assert "daemon started" in cli(sec_project, "daemon", "start", str(sec_project),
                                   env=env).stdout
    own = project_dir(env, sec_project)
    try:
        base.chmod(0o755)
        own.chmod(0o755)
        (own / "sock").chmod(0o777)
        drop_zone = Path(tempfile.mkdtemp(prefix="dvz"))
        drop_zone.chmod(0o1777)
        marker = drop_zone / "ran-as-owner"
        evil = drop_zone / "evil.py"
        evil.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
                        "ARTIFACTS = {}\n")
        evil.chmod(0o644)
        spin = request(1, "devd/spin", {"uri": (sec_project / "linear_flow.py").as_uri(),
                                        "step": "double", "artifactsModule": str(evil)})
        proc = attacker(other_user, """
            drop()
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(20)
            s.connect(sys.argv[3])
            print("ready", flush=True)
            try:
                s.sendall(sys.argv[4].encode())
                data = s.recv(65536)
                print("answered" if data else "closed", repr(data[:200]), flush=True)
            except OSError as exc:
                print("closed", exc, flush=True)
        """, str(own / "sock"), frame(spin).decode())
        wait_ready(proc)
        out = finish(proc, stop=False)
        assert out.startswith("closed"), out
        assert not marker.exists()
        status = cli(sec_project, "status", "--json", env=env)  # the owner still gets in
        assert json.loads(status.stdout)["pid"] > 0, status.stderr
        assert f"refused a connection from uid {other_user[0]}" in \
            log_text(str(own / "daemon.log"))
    finally:
        base.chmod(0o700)
        own.chmod(0o700)
        cli(sec_project, "daemon", "stop", str(sec_project), env=env)


def test_the_client_checks_who_listens_before_sending(other_user: tuple[int, int],
                                                      sec_project: Path) -> None:
    """A socket file of the owner's, but the process that listens on it is another
    user's: SO_PEERCRED tells, and the client sends nothing."""
    base = Path(tempfile.mkdtemp(prefix="dvc"))
    env = env_with(DEVD_RUNTIME_DIR=str(base))
    own = project_dir(env, sec_project)
    own.mkdir(mode=0o700)
    fake = attacker(other_user, FAKE_DAEMON, str(own / "sock"), "bind-first")
    try:
        wait_ready(fake)
        assert os.stat(own / "sock").st_uid == os.getuid()
        one_line_refusal(cli(sec_project, "status", str(sec_project), env=env),
                         f"runs as uid {other_user[0]}")
        one_line_refusal(cli(sec_project, "spin", "linear_flow.py", "double", env=env),
                         f"runs as uid {other_user[0]}")
    finally:
        received = finish(fake)
    assert "got" not in received, received


# -- item 13: TCP ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_limited(root: Path, env: dict[str, str], nofile: int, *extra: str) -> None:
    """`devd daemon start` whose daemon may open at most ``nofile`` files."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    out = subprocess.run([sys.executable, "-m", "devd.cli", "daemon", "start", str(root),
                          *extra], cwd=root, env=env, capture_output=True, text=True,
                         timeout=120, preexec_fn=limit)
    assert "daemon started" in out.stdout, out.stderr


def closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_tcp_token_must_come_first_and_in_time(sec_project: Path) -> None:
    env = env_with(DEVD_RUNTIME_DIR=tempfile.mkdtemp(prefix="dvt"))
    port = free_port()
    out = cli(sec_project, "daemon", "start", str(sec_project), "--tcp", str(port), env=env)
    assert "daemon started" in out.stdout, out.stderr
    own = project_dir(env, sec_project)
    token = json.loads((own / "info.json").read_text())["tcp"]["token"]
    try:
        silent = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow.sendall(b"TOKEN " + token[:5].encode())  # never finishes its line
        huge = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            huge.sendall(b"TOKEN " + b"x" * (1 << 20))
        except OSError:
            pass
        started = time.monotonic()
        for sock in (silent, slow, huge):
            sock.settimeout(10)
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass
            sock.close()
        assert time.monotonic() - started < 6, "unauthenticated connections were kept"
        with Raw(("127.0.0.1", port)) as conn:
            conn.send(f"TOKEN {token}\r\n".encode() + frame(request(1, "devd/status", {})))
            assert conn.answer(1)["result"]["pid"] > 0
        text = log_text(str(own / "daemon.log"))
        assert "Traceback" not in text and "Unhandled" not in text, text[-2000:]
    finally:
        cli(sec_project, "daemon", "stop", str(sec_project), env=env)


def test_a_thousand_idle_tcp_connections_do_not_stall_the_owner(sec_project: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.skip(f"this test holds 1,100 sockets; the file limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1400), hard))
    env = env_with(DEVD_RUNTIME_DIR=tempfile.mkdtemp(prefix="dvi"))
    port = free_port()
    start_limited(sec_project, env, 256, "--tcp", str(port))
    own = project_dir(env, sec_project)
    held: list[socket.socket] = []
    try:
        for _ in range(1100):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                pass
        started = time.monotonic()
        with Raw(str(own / "sock"), timeout=10) as conn:
            conn.send(request(1, "devd/status", {}))
            assert conn.answer(1, timeout=10)["result"]["pid"] > 0
        assert time.monotonic() - started < 2.0
        time.sleep(4)  # past the token timeout: every idle connection is closed
        still_open = sum(1 for sock in held if not closed_by_peer(sock))
        assert still_open == 0
        size = sum(p.stat().st_size for p in own.glob("daemon.log*"))
        assert size < 20_000, f"daemon.log is {size} bytes"
    finally:
        for sock in held:
            sock.close()
        cli(sec_project, "daemon", "stop", str(sec_project), env=env)


def test_accept_errors_are_logged_once_not_in_a_loop(sec_project: Path) -> None:
    """Out of file descriptors, every accept() fails; asyncio retries each second. The log
    says so once, and the daemon serves again when descriptors are free."""
    env = env_with(DEVD_RUNTIME_DIR=tempfile.mkdtemp(prefix="dva"))
    start_limited(sec_project, env, 96)
    own = project_dir(env, sec_project)
    held: list[socket.socket] = []
    try:
        for _ in range(150):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(0.5)
            try:
                sock.connect(str(own / "sock"))
                held.append(sock)
            except OSError:
                sock.close()
        time.sleep(5)
        text = log_text(str(own / "daemon.log"))
        assert 1 <= text.count("out of system resource") <= 1, text[-3000:]
        assert "Traceback" not in text
    finally:
        for sock in held:
            sock.close()
    time.sleep(1.5)
    status = cli(sec_project, "status", "--json", env=env)
    assert json.loads(status.stdout)["pid"] > 0, status.stderr
    cli(sec_project, "daemon", "stop", str(sec_project), env=env)
