"""Bounded answers and failure paths (issue 22): a huge error message, loud output, a full
disk or temp dir, a kill mid-persist, odd artifacts modules. Real runs, a real daemon over
its socket, the CLI and the MCP server as subprocesses; sizes and counts are asserted."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devd.common.project import daemon_paths
from tests.conftest import daemon_environment
from tests.wirehelp import Raw, cli, request

BOUNDS_FLOW = '''
import os
import signal
import sys

from metaflow import FlowSpec, card, current, step
from metaflow.cards import Markdown

RECORDING = bool(os.environ.get("BOUNDS_RECORDING"))


class Bomb:
    """Kills its own process when Metaflow pickles it to store it (mid-persist)."""

    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)


class BoundsFlow(FlowSpec):
    @step
    def start(self):
        self.blob = bytes(3_000_000)
        self.next(self.boom)

    @step
    def boom(self):
        if not RECORDING:
            raise ValueError("E" * 10_000_000)
        self.next(self.chatty)

    @step
    def chatty(self):
        self.size = len(self.blob)
        for _ in range(1 if RECORDING else 60_000):
            print("x" * 99)
        self.next(self.loud)

    @step
    def loud(self):
        sys.stderr.write(("y" * 99 + "\\n") * (1 if RECORDING else 60_000))
        self.next(self.heavy)

    @step
    def heavy(self):
        self.noise = os.urandom(10 if RECORDING else 40_000_000)
        self.next(self.killer)

    @step
    def killer(self):
        self.a_noise = os.urandom(5_000_000)
        if not RECORDING:
            self.z_bomb = Bomb()
        self.next(self.cards)

    @card(type="blank", id="c1")
    @card(type="blank", id="c2")
    @card(type="blank", id="c3")
    @card(type="blank", id="c4")
    @card(type="blank", id="c5")
    @card(type="blank", id="c6")
    @step
    def cards(self):
        for i in range(1, 7):
            current.card[f"c{i}"].append(Markdown(f"card {i} " + "word " * 3000))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BoundsFlow()
'''

SMALL = 100_000  # bytes: every answer about the failing step stays far below this
FULL_TEXT = re.compile(r"the full text is in (\S+?)\]")


def _project(prefix: str) -> Path:
    """A project of its own holding BoundsFlow, run once for real (short path: sockets)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    (root / "bounds_flow.py").write_text(BOUNDS_FLOW)
    env = {**os.environ, "BOUNDS_RECORDING": "1"}
    out = subprocess.run([sys.executable, "bounds_flow.py", "run"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return root


@contextlib.contextmanager
def _daemon(root: Path, env: dict[str, str] | None = None) -> Iterator[Path]:
    out = cli(root, "daemon", "start", str(root), env=env)
    assert "daemon started" in out.stdout, out.stderr
    try:
        yield root
    finally:
        cli(root, "daemon", "stop", str(root))


@pytest.fixture(scope="module")
def bounds_project() -> Iterator[Path]:
    with daemon_environment("dvb"):
        root = _project("dvb")
        with _daemon(root):
            yield root


def _size(message: Any) -> int:
    return len(json.dumps(message))


def _check_bounded_error(error: dict[str, Any]) -> None:
    """One line of at most ~2 KB, naming the private file that holds the whole text."""
    message = error["message"]
    assert error["type"] == "ValueError"
    assert "\n" not in message and len(message) < 2500, len(message)
    assert message.startswith("E" * 1000)
    full = FULL_TEXT.search(message)
    assert full is not None, message[-300:]
    path = Path(full.group(1))
    assert path.stat().st_mode & 0o777 == 0o600
    whole = path.read_text()  # the traceback, which ends with the whole message
    assert whole.startswith("Traceback") and whole.rstrip().endswith("E" * 10_000_000)
    assert whole.count("E" * 1000) == 10_000
    assert len(error["traceback"]) < 70_000
    assert error["traceback"].rstrip().endswith("]")  # the note says where the rest is


# -- item 5: error messages, cards and kept results stay within bounds -------------------------

def test_a_huge_error_message_is_one_bounded_line_in_every_answer(bounds_project: Path) -> None:
    root = bounds_project
    flow = (root / "bounds_flow.py").as_uri()
    sock = daemon_paths(str(root)).socket
    with Raw(sock, timeout=120) as editor, Raw(sock, timeout=120) as conn:
        editor.send(request(1, "initialize", {"processId": None, "rootUri": None,
                                               "capabilities": {}}))
        editor.answer(1)
        editor.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        conn.send(request(2, "devd/spin", {"uri": flow, "step": "boom"}))
        answer = conn.answer(2, timeout=120)
        assert _size(answer) < SMALL, _size(answer)
        _check_bounded_error(answer["result"]["error"])
        seen: dict[str, int] = {}
        while not {"devd/spinFinished", "textDocument/publishDiagnostics"} <= set(seen):
            message = editor.read(60)
            assert message is not None, seen
            if message.get("method"):
                seen[message["method"]] = max(seen.get(message["method"], 0), _size(message))
        assert max(seen.values()) < SMALL, seen  # what every editor is sent

        conn.send(request(3, "devd/artifacts", {"uri": flow, "step": "boom"}))
        artifacts = conn.answer(3)
        assert artifacts["result"]["ok"] is True and _size(artifacts) < SMALL
        _check_bounded_error(artifacts["result"]["error"])

    out = cli(root, "spin", "bounds_flow.py", "boom", "--json")
    assert out.returncode == 1, out.stderr
    assert len(out.stdout) < SMALL, len(out.stdout)
    data = json.loads(out.stdout)
    _check_bounded_error(data["error"])
    assert "\n" not in data["next"] and len(data["next"]) < 3000


def test_mcp_answers_of_a_huge_error_and_many_cards_are_bounded(bounds_project: Path) -> None:
    import asyncio

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from devd.cli.mcp import MAX_CARD_TEXT

    async def calls() -> dict[str, Any]:
        params = StdioServerParameters(command=sys.executable, args=["-m", "devd.cli", "mcp"],
                                       cwd=str(bounds_project), env=dict(os.environ))
        async with stdio_client(params) as (read, write), \
                ClientSession(read, write) as client:
            await client.initialize()
            return {name: await client.call_tool(name, {"flow": "bounds_flow.py", "step": step})
                    for name, step in (("spin", "boom"), ("artifacts", "boom"),
                                       ("card", "cards"))}

    answers = asyncio.run(calls())
    texts = {name: "\n".join(b.text for b in result.content if b.type == "text")
             for name, result in answers.items()}
    assert answers["spin"].is_error and not answers["card"].is_error
    assert all(len(text) < SMALL for text in texts.values()), \
        {name: len(text) for name, text in texts.items()}
    first = texts["spin"].splitlines()[0]
    assert "ValueError: EEEE" in first and len(first) < 2700 and FULL_TEXT.search(first)
    next_line = next(line for line in texts["spin"].splitlines() if line.startswith("next:"))
    assert len(next_line) < 3000
    _check_bounded_error(json.loads(texts["artifacts"])["error"])
    card = texts["card"]
    shown = card.count("=== card ")
    assert 1 <= shown < 6, shown  # six cards of ~15,000 characters of text each
    assert f"more cards left out: an answer keeps {MAX_CARD_TEXT} characters" in card
    assert len(card) < MAX_CARD_TEXT + 2000, len(card)


def test_a_spins_cards_together_stay_within_the_card_cap(bounds_project: Path) -> None:
    """Six cards of ~1.3 MB each (Metaflow's card page): with DEVD_MAX_CARD_MB=3 the answer
    keeps the first cards whole and the rest as a short page naming the file with each."""
    env = {**os.environ, "DEVD_MAX_CARD_MB": "3"}
    out = cli(bounds_project, "spin", "bounds_flow.py", "cards", "--json", "--no-daemon",
              env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    cards = json.loads(out.stdout)["cards"]
    assert len(cards) == 6
    assert sum(len(c["html"].encode()) for c in cards) <= 3 << 20
    cut = [c for c in cards if "DEVD_MAX_CARD_MB" in c["html"]]
    assert cards[0] not in cut and 1 <= len(cut) <= 5, [len(c["html"]) for c in cards]
    for card in cut:
        where = re.search(r"whole in (\S+?)\.</p>", card["html"])
        assert where is not None, card["html"]
        whole = Path(where.group(1))
        assert whole.stat().st_mode & 0o777 == 0o600
        page = whole.read_text()
        data = re.search(r'__MF_DATA__\[[^\]]*\] = "([A-Za-z0-9+/=]+)"', page)
        assert data is not None and whole.stat().st_size > 1 << 20
        assert "word word" in base64.b64decode(data.group(1)).decode()  # the card's own text
    full = json.loads(cli(bounds_project, "spin", "bounds_flow.py", "cards", "--json",
                          "--no-daemon").stdout)["cards"]
    assert not any("DEVD_MAX_CARD_MB" in c["html"] for c in full)  # 32 MB by default


def test_kept_results_count_against_the_memory_budget() -> None:
    """DEVD_BUDGET_MB=8: two last spins of ~6 MB of output each do not both fit; the older
    one gives up its output (the newer keeps all of it)."""
    with daemon_environment("dvk"):
        root = _project("dvk")
        with _daemon(root, env={**os.environ, "DEVD_BUDGET_MB": "8"}):
            flow = (root / "bounds_flow.py").as_uri()
            with Raw(daemon_paths(str(root)).socket, timeout=120) as conn:
                for msg_id, step in ((1, "chatty"), (2, "loud")):
                    conn.send(request(msg_id, "devd/spin", {"uri": flow, "step": step}))
                    assert conn.answer(msg_id, timeout=120)["result"]["ok"] is True
                conn.send(request(3, "devd/card", {"uri": flow, "step": "chatty"}))
                older = conn.answer(3)["result"]["spin"]
                conn.send(request(4, "devd/card", {"uri": flow, "step": "loud"}))
                newer = conn.answer(4)["result"]["spin"]
                conn.send(request(5, "devd/status", {}))
                status = conn.answer(5)["result"]
    assert len(older["stdout"]) < 1000 and "DEVD_BUDGET_MB" in older["stdout"], \
        len(older["stdout"])
    assert {"name": "size", "type": "int", "summary": "3000000"} in [
        {k: row[k] for k in ("name", "type", "summary")} for row in older["artifacts"]]
    assert newer["stderr"].count("y" * 99) == 60_000
    assert {s["step"] for s in status["lastSpins"]} == {"chatty", "loud"}


# -- item 9: a full temp dir ------------------------------------------------------------------

@contextlib.contextmanager
def _small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (a disk that fills up for real)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a full disk) needs root")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"mount is not permitted here: {out.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _files_under(path: Path) -> list[str]:
    return sorted(str(Path(d, f).relative_to(path)) for d, _, files in os.walk(path)
                  for f in files)


def _spin_json(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    out = cli(root, "spin", "bounds_flow.py", *args, "--no-daemon", "--json", env=env)
    assert out.stdout, out.stderr
    return json.loads(out.stdout), out


def test_a_full_temp_dir_keeps_the_output_cap_and_the_step_runs(bounds_project: Path) -> None:
    with _small_tmpfs(bounds_project / "small-tmp", "1m") as tmp:
        env = {**os.environ, "TMPDIR": str(tmp), "DEVD_MAX_LOG_MB": "1"}
        data, out = _spin_json(bounds_project, "chatty", env=env)
        left = _files_under(tmp)
    assert data["ok"] is True, data["error"]
    assert out.returncode == 0
    stdout = data["stdout"]
    assert stdout.count("x" * 99) == 10_000  # 1 MB kept, of 6 MB printed
    assert "stdout truncated at 1 MB (DEVD_MAX_LOG_MB): 5000000 more bytes, 50000 more " \
        "lines; not kept:" in stdout
    assert "No space left on device" in stdout and "point TMPDIR elsewhere" in stdout
    assert left == []  # the half-written spill file went


# -- item 8: a full disk, a kill mid-persist --------------------------------------------------

def test_persist_into_a_full_disk_leaves_nothing_and_says_so(bounds_project: Path) -> None:
    spin_root = bounds_project / ".metaflow_spin"
    with _small_tmpfs(spin_root, "20m"):
        data, out = _spin_json(bounds_project, "heavy", "--persist")  # 40 MB of artifact
        left = _files_under(spin_root)
    assert data["ok"] is False and data["persisted"] is False and data["pathspec"] is None
    assert "No space left on device" in data["error"]["message"]
    assert [n for n in data["notices"] if n.startswith("--persist: the spun task was not "
                                                      "stored")], data["notices"]
    assert "inspect_spin" not in out.stdout + out.stderr
    assert left == []


def test_a_kill_mid_persist_leaves_no_task_and_no_blobs(bounds_project: Path) -> None:
    spin_root = bounds_project / ".metaflow_spin"
    data, _ = _spin_json(bounds_project, "killer", "--persist")
    assert data["ok"] is False and data["persisted"] is False
    assert data["error"]["type"] == "devd.ChildCrashed"
    assert signal.SIGKILL.name in data["error"]["message"]
    assert _files_under(spin_root) == []
    # a persisted spin still lands whole, where inspect_spin reads it
    done, _ = _spin_json(bounds_project, "chatty", "--persist")
    assert done["ok"] is True and done["persisted"] is True
    code = ("from metaflow import inspect_spin, Task; inspect_spin('.'); "
            f"t = Task({done['pathspec']!r}, _namespace_check=False); "
            "print(t.finished, t.data.size)")
    out = subprocess.run([sys.executable, "-c", code], cwd=bounds_project,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "3000000"], out.stderr[-2000:]
    assert not [p for p in os.listdir(spin_root) if p.startswith(".devd-staging-")]


# -- item 10: artifacts modules that are no Python file ---------------------------------------

def test_artifacts_module_that_is_no_python_file_gets_one_line_saying_what_to_do(
        bounds_project: Path) -> None:
    root = bounds_project
    (root / "am_nul.py").write_bytes(b"ARTIFACTS = {'n': 1}\x00\n")
    (root / "am_dir.py").mkdir(exist_ok=True)
    fifo = root / "am_fifo.py"
    if not fifo.exists():
        os.mkfifo(fifo)
    expected = {
        "am_nul.py": "am_nul.py: SyntaxError: source code string cannot contain null bytes; "
                     "fix the artifacts module and spin again",
        "am_dir.py": "am_dir.py: is a directory, not a file; pass the path of a .py file "
                     "that defines ARTIFACTS = {...}",
        "am_fifo.py": "am_fifo.py: is a FIFO, not a file; pass the path of a .py file that "
                      "defines ARTIFACTS = {...}",
    }
    for name, message in expected.items():
        out = cli(root, "spin", "bounds_flow.py", "chatty", "--artifacts-module", name,
                  "--no-daemon")
        assert out.returncode == 2, (name, out.stdout[-500:], out.stderr)
        assert out.stderr.count("\n") == 1 and out.stderr.rstrip().endswith(message), \
            out.stderr
        assert "None" not in out.stderr and "no such" not in out.stderr
