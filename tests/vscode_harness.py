"""A real VS Code (code-server) in headless Chromium, for end-to-end tests of an extension.

`make editor-tools` (a dependency of `make test`) installs the tools under ``.cache/editor``:
Node 24, code-server, @vscode/vsce, and Debian's chromium. This module finds them, packages
extensions, runs code-server with a fresh user-data and extensions dir, and drives the
workbench through Python playwright's sync API::

    tools, why = find_editor_tools()
    if tools is None:
        pytest.skip(why)
    vsix = package_vsix(extension_dir, tmp_path / "ext.vsix", tools)
    with CodeServer(vsix, workspace, tools=tools) as server, open_workbench(server) as wb:
        wb.open_file("flow.py")
        wb.goto_line(12)
        wb.press("ctrl+alt+s")
        wb.wait_for_webview_text("spun")

Every wait has a generous timeout (the machine is slow and has 2 cores) and fails with an
`EditorTestError` that carries the code-server log tail, the visible notifications, the
status bar and a screenshot path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT = 60.0  # seconds, for each wait in the workbench
START_TIMEOUT = 120.0  # seconds, for code-server to serve

# Settings that keep a fresh VS Code quiet and deterministic: no trust prompt, welcome page,
# chat side bar (it steals focus from the editor), tips, recommendations or telemetry; a
# terminal rendered as DOM text; typing that inserts exactly the keys typed.
BASE_SETTINGS: dict[str, Any] = {
    "security.workspace.trust.enabled": False,
    "workbench.startupEditor": "none",
    "workbench.welcomePage.walkthroughs.openOnInstall": False,
    "workbench.tips.enabled": False,
    "workbench.enableExperiments": False,
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "workbench.editor.enablePreview": False,
    "workbench.editor.untitled.hint": "hidden",
    "chat.disableAIFeatures": True,
    "chat.commandCenter.enabled": False,
    "extensions.ignoreRecommendations": True,
    "extensions.autoUpdate": False,
    "extensions.autoCheckUpdates": False,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "git.enabled": False,
    "editor.minimap.enabled": False,
    "editor.accessibilitySupport": "off",
    "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
    "editor.suggestOnTriggerCharacters": False,
    "editor.acceptSuggestionOnEnter": "off",
    "editor.autoClosingBrackets": "never",
    "editor.autoClosingQuotes": "never",
    "editor.autoIndent": "none",
    "editor.formatOnType": False,
    "files.autoSave": "off",
    "terminal.integrated.gpuAcceleration": "off",
    "terminal.integrated.enablePersistentSessions": False,
    "terminal.integrated.shellIntegration.enabled": False,
}

T = TypeVar("T")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EditorTestError(AssertionError):
    """A wait in the editor that timed out, with what the editor showed then."""


# --- the tools -------------------------------------------------------------------------------

@dataclass(frozen=True)
class EditorTools:
    """The tools `make editor-tools` installs."""

    root: Path  # .cache/editor
    bin_dir: Path  # holds `node` (Node 24): put first on PATH for node, npm and npx
    node: Path
    code_server: Path  # code-server's package dir (out/node/entry.js inside)
    vsce: Path | None  # @vscode/vsce's JS entry point, run with `node`
    chromium: Path

    @property
    def entry(self) -> Path:
        return self.code_server / "out" / "node" / "entry.js"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment whose `node` is Node 24."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"
        return env


def extension_vsix() -> Path:
    """The .vsix `make vsix` builds (built here when missing, as `make test` does first)."""
    version = json.loads((REPO / "vscode-extension/package.json").read_text())["version"]
    vsix = REPO / "vscode-extension" / f"devd-{version}.vsix"
    if not vsix.exists():
        subprocess.run(["make", "-C", str(REPO), "vsix"], check=True, timeout=600)
    return vsix


def flow_workspace(root: Path, flow: str, python: str) -> Path:
    """``root`` holding examples/``flow`` with one real recorded run (by ``python``)."""
    shutil.copy(REPO / "examples" / flow, root / flow)
    subprocess.run([python, flow, "run"], cwd=root, check=True, capture_output=True,
                   timeout=300)
    return root


def tools_dir() -> Path:
    return Path(os.environ.get("DEVD_EDITOR_TOOLS") or REPO / ".cache" / "editor")


def find_editor_tools() -> tuple[EditorTools | None, str]:
    """The installed tools, or None and why not (a reason to skip with)."""
    root = tools_dir()
    hint = "run `make editor-tools` (`make test` does)"
    node = root / "bin" / "node"
    code_server = root / "code-server" / "node_modules" / "code-server"
    vsce = root / "vsce" / "node_modules" / "@vscode" / "vsce" / "vsce"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not node.exists():
        return None, f"no Node 24 at {node}: {hint}"
    if not (code_server / "out" / "node" / "entry.js").exists():
        return None, f"no code-server in {code_server}: {hint}"
    if not (code_server / "lib" / "vscode" / "node_modules").is_dir():
        return None, f"code-server in {code_server} lacks its postinstall: {hint}"
    if not Path(chromium).exists():
        return None, f"no chromium ({chromium}): {hint}, as root"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None, "Python playwright is not installed: `make install`"
    return EditorTools(root=root, bin_dir=root / "bin", node=node, code_server=code_server,
                       vsce=vsce if vsce.exists() else None, chromium=Path(chromium)), ""


def _tools(tools: EditorTools | None) -> EditorTools:
    if tools is not None:
        return tools
    found, why = find_editor_tools()
    if found is None:
        raise RuntimeError(why)
    return found


# --- packaging -------------------------------------------------------------------------------

def package_vsix(ext_dir: Path | str, out: Path | str | None = None,
                 tools: EditorTools | None = None, timeout: float = 300) -> Path:
    """Package an extension directory with @vscode/vsce (offline), as a publisher would.

    Dependencies in the extension's node_modules must already be installed. Falls back to
    `zip_vsix` when vsce is not installed.
    """
    tools = _tools(tools)
    ext_dir = Path(ext_dir)
    manifest = json.loads((ext_dir / "package.json").read_text())
    out = Path(out) if out else ext_dir / f"{manifest['name']}-{manifest['version']}.vsix"
    if tools.vsce is None:
        return zip_vsix(ext_dir, out)
    cmd = [str(tools.node), str(tools.vsce), "package", "--out", str(out),
           "--allow-missing-repository", "--skip-license", "--allow-star-activation"]
    proc = subprocess.run(cmd, cwd=ext_dir, env=tools.env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"vsce package failed ({proc.returncode}) in {ext_dir}:\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return out


def zip_vsix(ext_dir: Path | str, out: Path | str,
             exclude: Sequence[str] = (".git", ".vscode-test", "*.vsix")) -> Path:
    """A .vsix made by hand: a zip of extension.vsixmanifest, [Content_Types].xml and the
    directory's files under extension/ (everything but `exclude` name patterns)."""
    ext_dir, out = Path(ext_dir), Path(out)
    pkg = json.loads((ext_dir / "package.json").read_text())
    engine = pkg.get("engines", {}).get("vscode", "*")
    manifest = f"""<?xml version="1.0" encoding="utf-8"?>
<PackageManifest Version="2.0.0" xmlns="http://schemas.microsoft.com/developer/vsx-schema/2011"
  xmlns:d="http://schemas.microsoft.com/developer/vsx-schema-design/2011">
  <Metadata>
    <Identity Language="en-US" Id="{escape(pkg['name'])}" Version="{escape(pkg['version'])}"
      Publisher="{escape(pkg['publisher'])}" />
    <DisplayName>{escape(pkg.get('displayName', pkg['name']))}</DisplayName>
    <Description xml:space="preserve">{escape(pkg.get('description', ''))}</Description>
    <Properties>
      <Property Id="Microsoft.VisualStudio.Code.Engine" Value="{escape(engine)}" />
      <Property Id="Microsoft.VisualStudio.Code.ExtensionKind" Value="workspace" />
    </Properties>
  </Metadata>
  <Installation><InstallationTarget Id="Microsoft.VisualStudio.Code"/></Installation>
  <Dependencies/>
  <Assets>
    <Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json"
      Addressable="true" />
  </Assets>
</PackageManifest>
"""
    files = sorted(p for p in ext_dir.rglob("*") if p.is_file() and not any(
        part_matches(part, exclude) for part in p.relative_to(ext_dir).parts))
    types = sorted({p.suffix.lstrip(".") for p in files if p.suffix} | {"vsixmanifest"})
    content_types = ('<?xml version="1.0" encoding="utf-8"?>\n<Types xmlns='
                     '"http://schemas.openxmlformats.org/package/2006/content-types">'
                     + "".join(f'<Default Extension=".{escape(t)}" ContentType="application/'
                               f'octet-stream"/>' for t in types) + "</Types>\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("extension.vsixmanifest", manifest)
        z.writestr("[Content_Types].xml", content_types)
        for p in files:
            z.write(p, "extension/" + p.relative_to(ext_dir).as_posix())
    return out


def part_matches(name: str, patterns: Sequence[str]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(name, pat) for pat in patterns)


# --- code-server -----------------------------------------------------------------------------

class CodeServer:
    """code-server on 127.0.0.1 (a free port), with fresh user-data and extensions dirs, the
    given .vsix files installed and ``settings`` merged over `BASE_SETTINGS`.

    ``env`` is merged over this process's environment (less VS Code's own variables) with
    Node 24 first on PATH; the extension host and integrated terminals inherit it. Use as a
    context manager: it waits until the server serves, and at exit stops it and every process
    it started: those in its process group, below it, or (daemons that left both) still
    carrying its ``DEVD_CODE_SERVER_ID`` environment variable. Its temporary dir (logs,
    failure screenshots) is removed then, unless the block failed or DEVD_KEEP_EDITOR_DIRS=1.
    """

    def __init__(self, vsix: Path | str | Sequence[Path | str] | None, workspace: Path | str,
                 settings: dict[str, Any] | None = None, env: dict[str, str] | None = None, *,
                 tools: EditorTools | None = None, base_dir: Path | str | None = None,
                 start_timeout: float = START_TIMEOUT) -> None:
        self.tools = _tools(tools)
        if vsix is None:
            self.vsix: list[Path] = []
        elif isinstance(vsix, (str, Path)):
            self.vsix = [Path(vsix)]
        else:
            self.vsix = [Path(v) for v in vsix]
        self.workspace = Path(workspace).resolve()
        self.settings = {**BASE_SETTINGS, **(settings or {})}
        self.extra_env = dict(env or {})
        self._own_base = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="devd-code-server-"))
        self.user_data_dir = self.base_dir / "user-data"
        self.extensions_dir = self.base_dir / "extensions"
        self.log_path = self.base_dir / "code-server.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"

    # - life cycle

    def __enter__(self) -> CodeServer:
        try:
            self.start()
        except BaseException:
            self.stop(keep_dir=True)
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop(keep_dir=exc_type is not None)

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("VSCODE_", "ELECTRON_", "CODE_SERVER_"))}
        env = self.tools.env(base)
        for key, value in self.extra_env.items():
            if key == "PATH":  # the caller's PATH, with Node 24 still first
                value = f"{self.tools.bin_dir}{os.pathsep}{value}"
            env[key] = value
        env["DEVD_CODE_SERVER_ID"] = self.id
        return env

    def _node_cmd(self, *args: str) -> list[str]:
        return [str(self.tools.node), str(self.tools.entry), "--config",
                str(self.base_dir / "config.yaml"), "--user-data-dir", str(self.user_data_dir),
                "--extensions-dir", str(self.extensions_dir), *args]

    def install_extension(self, vsix: Path | str, timeout: float = 180) -> None:
        """Install a .vsix into this server's extensions dir (start() does, for its own)."""
        self._prepare()
        proc = subprocess.run(self._node_cmd("--install-extension", str(vsix), "--force"),
                              env=self.env(), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        out = proc.stdout + proc.stderr
        if proc.returncode != 0 or "successfully installed" not in out:
            raise RuntimeError(f"installing {vsix} into code-server failed "
                               f"({proc.returncode}):\n{out[-3000:]}")

    def _prepare(self) -> None:
        for d in (self.user_data_dir / "User", self.extensions_dir):
            d.mkdir(parents=True, exist_ok=True)
        # Its own config file: code-server would otherwise write ~/.config/code-server/.
        (self.base_dir / "config.yaml").write_text("auth: none\ncert: false\n")
        (self.user_data_dir / "User" / "settings.json").write_text(
            json.dumps(self.settings, indent=2))

    def start(self) -> None:
        self._prepare()
        for vsix in self.vsix:
            self.install_extension(vsix)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self._node_cmd("--auth", "none", "--bind-addr", "127.0.0.1:0",
                               "--disable-telemetry", "--disable-update-check",
                               "--disable-workspace-trust", "--disable-getting-started-override",
                               str(self.workspace)),
                env=self.env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workspace, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"code-server exited ({self.proc.returncode}) before "
                                   f"serving:\n{self.log_tail()}")
            if self.port is None:
                m = re.search(r"HTTP server listening on http://127\.0\.0\.1:(\d+)/",
                              self.log_text())
                if m:
                    self.port = int(m.group(1))
            if self.port is not None and self._serves():
                return
            time.sleep(0.2)
        raise RuntimeError(f"code-server did not serve within {self.start_timeout:.0f} s:\n"
                           f"{self.log_tail()}")

    def _serves(self) -> bool:
        try:
            with _NO_PROXY.open(self.url + "healthz", timeout=5) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, keep_dir: bool = False) -> None:
        """Stop code-server and every process it started (see the class doc)."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group is the server's pid
        pids = (_descendants(self.proc.pid) | _group_members(pgid)
                | _marked(f"DEVD_CODE_SERVER_ID={self.id}")) - {os.getpid()}
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                continue
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.1)
            if not any(_alive(p) for p in pids):
                break
        self.proc = None
        if keep_dir or os.environ.get("DEVD_KEEP_EDITOR_DIRS") == "1":
            print(f"code-server's dir (logs, user data) is kept: {self.base_dir}")
        elif self._own_base:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    # - what it serves and logs

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("code-server is not started")
        return f"http://127.0.0.1:{self.port}/"

    def folder_url(self, folder: Path | str | None = None) -> str:
        folder = Path(folder).resolve() if folder else self.workspace
        return f"{self.url}?folder={urllib.parse.quote(str(folder))}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return "\n".join(tail) or "(code-server log is empty)"

    def vscode_logs(self, pattern: str = "**/*.log") -> dict[str, str]:
        """VS Code's own logs under the user-data dir (exthost.log, remoteagent.log, the
        extensions' output channels), by path relative to its logs dir."""
        logs = self.user_data_dir / "logs"
        return {str(p.relative_to(logs)): p.read_text(errors="replace")
                for p in sorted(logs.glob(pattern)) if p.is_file()} if logs.exists() else {}

    def output_channel(self, name: str) -> str:
        """The text of a log output channel (``createOutputChannel(name, {log: true})``) of an
        extension, from the newest session's logs; "" when there is none."""
        logs = self.vscode_logs(f"**/{name}.log")
        return logs[max(logs)] if logs else ""


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _descendants(pid: int) -> set[int]:
    children, found, todo = _children_map(), set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _group_members(pgid: int) -> set[int]:
    members = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[3]) == pgid:
                    members.add(int(entry))
    return members


def _marked(marker: str) -> set[int]:
    """Processes whose environment holds ``marker`` (NAME=value)."""
    found, needle = set(), marker.encode() + b"\0"
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if needle in Path(f"/proc/{entry}/environ").read_bytes() + b"\0":
                    found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --- the workbench in Chromium ---------------------------------------------------------------

@contextlib.contextmanager
def open_workbench(server: CodeServer, folder: Path | str | None = None, *,
                   artifacts: Path | str | None = None, width: int = 1400, height: int = 900,
                   timeout: float = TIMEOUT) -> Iterator[Workbench]:
    """Debian's chromium (headless) showing ``server``'s workbench on ``folder`` (default its
    workspace). Screenshots on failure go to ``artifacts`` (default the server's base dir)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(server.tools.chromium),
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            wb = Workbench(page, server, artifacts=artifacts, timeout=timeout)
            wb.open(folder)
            yield wb
        finally:
            browser.close()


# --- devd's editor suites: the module fixture they share -------------------------------------

def devd_env(runtime: Path | str, *, venv_first: bool = True) -> dict[str, str]:
    """What the editor's devd runs with: Metaflow's local datastore and metadata, a runtime dir
    of its own (its daemon apart from every other test's), a user name Metaflow accepts, and
    with ``venv_first`` this interpreter's bin first on PATH (a terminal finds its devd)."""
    path = os.environ.get("PATH", "")
    return {
        "USER": os.environ.get("USER", "devd-test"),
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
        "DEVD_RUNTIME_DIR": str(runtime),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{path}" if venv_first else path,
    }


@contextlib.contextmanager
def devd_code_server(tools: EditorTools, workspace: Path, env: dict[str, str],
                     settings: dict[str, Any] | None = None, *,
                     vsix: Path | str | None = None) -> Iterator[CodeServer]:
    """code-server with the devd extension (default: the `make vsix` build) on ``workspace``,
    its devd this interpreter (``devd.pythonPath``) run with ``env`` (devd_env); the
    workspace's daemon is stopped at the end."""
    settings = {"devd.pythonPath": sys.executable, **(settings or {})}
    with CodeServer(vsix or extension_vsix(), workspace, settings, env, tools=tools) as server:
        try:
            yield server
        finally:
            subprocess.run([sys.executable, "-m", "devd.cli", "daemon", "stop", str(workspace)],
                           env={**os.environ, **env}, capture_output=True, timeout=60)


@contextlib.contextmanager
def devd_workbench(tools: EditorTools, workspace: Path, env: dict[str, str], flow: str, *,
                   settings: dict[str, Any] | None = None, vsix: Path | str | None = None,
                   artifacts: Path | str | None = None) -> Iterator[Workbench]:
    """devd_code_server's workbench in Chromium with ``flow`` open and its editor focused: the
    module fixture of the editor suites (they decide whether to skip: find_editor_tools)."""
    with devd_code_server(tools, workspace, env, settings, vsix=vsix) as server, \
            open_workbench(server, artifacts=artifacts) as bench:
        bench.open_file(flow)
        bench.click_editor()
        yield bench


_KEYS = {"ctrl": "Control", "control": "Control", "alt": "Alt", "shift": "Shift",
         "cmd": "Meta", "meta": "Meta", "win": "Meta", "enter": "Enter", "esc": "Escape",
         "escape": "Escape", "tab": "Tab", "space": "Space", "backspace": "Backspace",
         "delete": "Delete", "up": "ArrowUp", "down": "ArrowDown", "left": "ArrowLeft",
         "right": "ArrowRight", "home": "Home", "end": "End", "pageup": "PageUp",
         "pagedown": "PageDown", "`": "Backquote"}


def playwright_key(chord: str) -> str:
    """A VS Code style chord ("ctrl+alt+s", "ctrl+shift+`", "f1") as playwright's
    ("Control+Alt+S", "Control+Shift+Backquote", "F1"); playwright's own names pass."""
    parts = []
    for part in chord.split("+"):
        low = part.lower()
        if low in _KEYS:
            parts.append(_KEYS[low])
        elif re.fullmatch(r"f\d{1,2}", low):
            parts.append(low.upper())
        elif len(part) == 1:
            parts.append(part.upper() if part.isalpha() else part)
        else:
            parts.append(part)
    return "+".join(parts)


class Workbench:
    """The VS Code workbench in a playwright ``Page`` (sync API)."""

    def __init__(self, page: Any, server: CodeServer | None = None, *,
                 artifacts: Path | str | None = None, timeout: float = TIMEOUT) -> None:
        self.page = page
        self.server = server
        self.timeout = timeout
        self.artifacts = Path(artifacts) if artifacts else (
            server.base_dir if server else Path(tempfile.mkdtemp(prefix="devd-workbench-")))
        self._failures = 0
        self._file: str | None = None  # the file open_file opened last
        self.errors: list[str] = []  # page errors and console errors, webviews' too
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"[:500]))
        page.on("console", self._console)

    # Errors every session shows here, not worth reporting: the marketplace lookups that
    # fail offline, and code-server's missing (Microsoft-only) vsda files.
    NOISE = ("open-vsx.org", "ERR_NAME_NOT_RESOLVED", "ENOTFOUND", "/vsda/")

    def _console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        with contextlib.suppress(Exception):
            text = f"{msg.text} ({(msg.location or {}).get('url', '')})"
            if not any(n in text for n in self.NOISE):
                self.errors.append(f"console: {text}"[:500])

    # - failures and waiting

    def fail(self, message: str) -> EditorTestError:
        """An error telling what the editor showed: screenshot, notifications, status bar,
        code-server's log tail. Raise it."""
        parts = [message]
        self._failures += 1
        shot = self.artifacts / f"failure-{self._failures}.png"
        try:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(shot))
            parts.append(f"screenshot: {shot}")
        except Exception as exc:  # the page may be gone
            parts.append(f"(no screenshot: {exc})")
        with contextlib.suppress(Exception):
            parts.append(f"status bar: {self.status_bar_text()!r}")
        with contextlib.suppress(Exception):
            parts.append(f"notifications: {self.notifications_text()!r}")
        if self.errors:
            parts.append("browser errors (last 10):\n" + "\n".join(self.errors[-10:]))
        if self.server is not None:
            parts.append("code-server log tail:\n" + self.server.log_tail(30))
            exthost = list(self.server.vscode_logs("**/remoteexthost.log").values())
            if exthost:
                parts.append("extension host log tail:\n"
                             + "\n".join(exthost[-1].splitlines()[-30:]))
        return EditorTestError("\n".join(parts))

    def wait_until(self, check: Callable[[], T], what: str, timeout: float | None = None,
                   interval: float = 0.25) -> T:
        """Poll ``check`` until it returns something truthy (returned); fail telling ``what``
        was awaited. Exceptions inside ``check`` count as not yet."""
        deadline = time.monotonic() + (timeout or self.timeout)
        last_exc: Exception | None = None
        while True:
            try:
                value = check()
                if value:
                    return value
            except Exception as exc:
                last_exc = exc
            if time.monotonic() > deadline:
                extra = f" (last error: {last_exc})" if last_exc else ""
                raise self.fail(f"timed out after {timeout or self.timeout:.0f} s waiting for "
                                f"{what}{extra}")
            self.page.wait_for_timeout(interval * 1000)

    def wait_for_selector(self, selector: str, timeout: float | None = None,
                          state: str = "visible") -> Any:
        try:
            return self.page.wait_for_selector(selector, state=state,
                                               timeout=(timeout or self.timeout) * 1000)
        except Exception as exc:
            raise self.fail(f"no {state} {selector!r}: {str(exc).splitlines()[0]}") from None

    # - the workbench

    def open(self, folder: Path | str | None = None) -> None:
        """Load the workbench on ``folder`` and wait until it is ready for keys."""
        if self.server is None:
            raise ValueError("open() needs the CodeServer")
        self.page.goto(self.server.folder_url(folder), timeout=self.timeout * 1000)
        self.wait_for_selector(".monaco-workbench")
        self.wait_for_selector(".part.statusbar")
        # The explorer's tree is about the last thing a fresh window fills in (none when the
        # folder is empty).
        with contextlib.suppress(Exception):
            self.page.wait_for_selector(".explorer-folders-view .monaco-list-row",
                                        state="attached", timeout=15000)

    def press(self, *chords: str) -> None:
        """Press key chords in order: "ctrl+alt+s", "Enter", "ctrl+k", "ctrl+i"."""
        for chord in chords:
            self.page.keyboard.press(playwright_key(chord))

    def type(self, text: str, delay: float = 0) -> None:
        """Type text where the focus is (no key chords; newlines press Enter)."""
        self.page.keyboard.type(text, delay=delay * 1000)

    def _quick_input(self, chord: str, timeout: float | None = None) -> Any:
        """Press ``chord`` until the quick input box shows (a key pressed while the workbench
        is still starting can be dropped); return the box."""
        box = ".quick-input-widget .quick-input-box input"

        def shown() -> Any:
            if not self.page.is_visible(box):
                self.press(chord)
                self.page.wait_for_selector(box, state="visible", timeout=5000)
            return self.page.query_selector(box)

        return self.wait_until(shown, f"the quick input ({chord})", timeout, interval=0.5)

    def _close_quick_input(self) -> None:
        # Only then: Escape elsewhere would also hide notification toasts.
        if self.page.is_visible(".quick-input-widget"):
            self.press("Escape")
            self.wait_for_selector(".quick-input-widget", state="hidden")

    def _rows(self) -> list[Any]:
        return self.page.query_selector_all(
            ".quick-input-widget .quick-input-list .monaco-list-row")

    def run_command(self, title: str, timeout: float | None = None) -> None:
        """Run a command palette command (F1) by its title as shown: "View: Toggle Terminal"."""
        self._close_quick_input()
        self._quick_input("f1", timeout).fill(">" + title)

        def find() -> Any:
            for el in self._rows():
                aria = el.get_attribute("aria-label") or ""
                first = el.inner_text().split("\n")[0].strip()
                if first == title or aria == title or aria.startswith(title + ","):
                    return el
            return None

        self.wait_until(find, f"command {title!r} in the palette", timeout).click()
        self.wait_for_selector(".quick-input-widget", timeout, state="hidden")

    def open_file(self, name: str, timeout: float | None = None) -> None:
        """Open a workspace file by name (Ctrl+P) and focus its editor."""
        self._close_quick_input()
        self._quick_input("ctrl+p", timeout).fill(name)
        base = Path(name).name

        def find() -> Any:
            for el in self._rows():
                if base in (el.get_attribute("aria-label") or el.inner_text()):
                    return el
            return None

        self.wait_until(find, f"{name!r} in the Ctrl+P list", timeout).click()
        self._file = base
        self.wait_until(lambda: self.active_tab() == base, f"the tab of {name!r}", timeout)
        self.wait_for_selector(self._editor(), timeout)
        self.click_editor()

    def active_tab(self) -> str:
        """The file name on the active editor group's active tab."""
        el = self.page.query_selector(".editor-group-container.active .tab.active")
        return (el.get_attribute("data-resource-name") or "") if el else ""

    def _editor(self) -> str:
        """The focused text editor, else that of the file last opened, else any."""
        if self.page.query_selector(".monaco-editor.focused"):
            return ".monaco-editor.focused"
        if self._file and self.page.query_selector(f'.monaco-editor[data-uri$="/{self._file}"]'):
            return f'.monaco-editor[data-uri$="/{self._file}"]'
        return ".monaco-editor"

    def click_editor(self, name: str | None = None) -> None:
        """Focus the text editor of file ``name`` (default the one last opened) by clicking its
        text; the cursor moves to the click (use goto_line after)."""
        sel = (f'.monaco-editor[data-uri$="/{Path(name).name}"]' if name else
               f'.monaco-editor[data-uri$="/{self._file}"]' if self._file else ".monaco-editor")
        self.wait_for_selector(f"{sel} .view-lines")
        self.page.click(f"{sel} .view-lines", position={"x": 5, "y": 5})
        self.wait_for_selector(f"{sel}.focused")

    def focus_editor_group(self, n: int = 1) -> None:
        """Focus editor group ``n`` (1 = left) with Ctrl+n."""
        self.press(f"ctrl+{n}")

    def goto_line(self, line: int, column: int | None = None) -> None:
        """Move the cursor with Ctrl+G and check the status bar says so."""
        self._quick_input("ctrl+g").fill(f":{line}" + (f":{column}" if column else ""))
        self.page.wait_for_timeout(200)
        self.press("Enter")
        self.wait_for_selector(".quick-input-widget", state="hidden")
        want = f"Ln {line}, Col {column or 1}" if column else f"Ln {line},"
        self.wait_until(lambda: want in self.status_bar_text(), f"{want!r} in the status bar")

    def editor_text(self) -> str:
        """The visible lines of the active text editor (spaces normalised)."""
        el = self.page.query_selector(f"{self._editor()} .view-lines")
        return el.inner_text().replace("\u00a0", " ") if el else ""

    def save(self) -> None:
        self.press("ctrl+s")

    # - webviews

    def webview_texts(self, include_main: bool = False) -> list[str]:
        """``document.body.innerText`` of every frame: webviews live in nested iframes, and
        card HTML in sandboxed srcdoc iframes deeper still; all are included. The main
        frame (the workbench itself) only when asked."""
        texts = []
        for frame in self.page.frames:
            if frame == self.page.main_frame and not include_main:
                continue
            try:
                text = frame.evaluate("() => document.body ? document.body.innerText : ''")
            except Exception:  # a frame detached or not ready
                continue
            if text and text.strip():
                texts.append(text)
        return texts

    def wait_for_webview_text(self, text: str, timeout: float | None = None) -> str:
        """Wait until some frame shows ``text``; returns that frame's text."""
        return self.wait_until(
            lambda: next((t for t in self.webview_texts() if text in t), None),
            f"a webview showing {text!r}", timeout)

    def webview_frame(self, text: str, timeout: float | None = None) -> Any:
        """The playwright Frame whose body shows ``text`` (to click or query inside it)."""
        def find() -> Any:
            for frame in self.page.frames:
                if frame == self.page.main_frame:
                    continue
                with contextlib.suppress(Exception):
                    if text in frame.evaluate("() => document.body ? "
                                              "document.body.innerText : ''"):
                        return frame
            return None

        return self.wait_until(find, f"a frame showing {text!r}", timeout)

    # - status bar and notifications

    def status_bar_text(self) -> str:
        return self.page.inner_text(".part.statusbar").replace("\n", " ")

    def status_bar_items(self) -> list[str]:
        """The text of each status bar item."""
        return [t.strip() for t in self.page.eval_on_selector_all(
            ".part.statusbar .statusbar-item", "els => els.map(e => e.innerText)") if t.strip()]

    def wait_for_status_text(self, text: str, timeout: float | None = None) -> str:
        return self.wait_until(lambda: next(
            (t for t in self.status_bar_items() if text in t), None),
            f"{text!r} in the status bar", timeout)

    def notifications_text(self) -> list[str]:
        """The visible notification toasts (message, source and buttons as one text each)."""
        return [t.strip() for t in self.page.eval_on_selector_all(
            ".notifications-toasts .notification-toast",
            "els => els.map(e => e.innerText)") if t.strip()]

    def wait_for_notification(self, text: str, timeout: float | None = None) -> str:
        return self.wait_until(lambda: next(
            (t for t in self.notifications_text() if text in t), None),
            f"a notification saying {text!r}", timeout)

    def notification_center_text(self) -> list[str]:
        """Every notification, also those whose toast has gone (opens the center)."""
        if not self.page.is_visible(".notifications-center"):
            self.run_command("Notifications: Show Notifications")
        self.wait_for_selector(".notifications-center")
        return [t.strip() for t in self.page.eval_on_selector_all(
            ".notifications-center .monaco-list-row", "els => els.map(e => e.innerText)")
            if t.strip()]

    def clear_notifications(self) -> None:
        self.run_command("Notifications: Clear All Notifications")

    # - terminal

    def open_terminal(self, timeout: float | None = None) -> None:
        """A new integrated terminal, focused and showing a prompt."""
        before = len(self.page.query_selector_all(".terminal-wrapper"))
        self.run_command("Terminal: Create New Terminal", timeout)
        self.wait_until(lambda: len(self.page.query_selector_all(".terminal-wrapper")) > before,
                        "a new terminal", timeout)
        self.wait_until(lambda: self.terminal_text().strip(), "a terminal prompt", timeout)

    def terminal_text(self) -> str:
        """The rows of the visible terminal (DOM renderer: gpuAcceleration is off)."""
        rows = self.page.query_selector_all(".terminal-wrapper.active .xterm-rows")
        if not rows:
            rows = self.page.query_selector_all(".xterm-rows")
        return "\n".join(r.inner_text() for r in rows).replace("\u00a0", " ")

    def terminal_run(self, command: str, expect: str | None = None,
                     timeout: float | None = None) -> str:
        """Type ``command`` + Enter into the terminal; wait for ``expect`` if given."""
        self.page.click(".terminal-wrapper.active .xterm-screen"
                        if self.page.query_selector(".terminal-wrapper.active")
                        else ".xterm-screen")
        self.type(command)
        self.press("Enter")
        if expect is None:
            return self.terminal_text()
        return self.wait_until(lambda: (t := self.terminal_text()) and expect in t and t,
                               f"{expect!r} in the terminal", timeout)

    # - diagnostics, hovers, lenses

    def squiggles(self, severity: str = "error") -> int:
        """How many ``severity`` squiggles (error, warning, info, hint) the editor shows."""
        return len(self.page.query_selector_all(f"{self._editor()} .squiggly-{severity}"))

    def problems_text(self, timeout: float | None = None) -> str:
        """The Problems panel's text (shown with Ctrl+Shift+M)."""
        if not self.page.query_selector(".markers-panel"):
            self.press("ctrl+shift+m")
        el = self.wait_for_selector(".markers-panel", timeout)
        self.page.wait_for_timeout(300)
        return el.inner_text()

    def hover_text(self, timeout: float | None = None) -> str:
        """Show the hover at the cursor (Ctrl+K Ctrl+I) and return its text."""
        hover = ".monaco-hover:not(.hidden)"
        if self.page.is_visible(hover):  # an old one: close it first
            self.press("Escape")
            self.wait_for_selector(hover, timeout, state="hidden")
        self.press("ctrl+k", "ctrl+i")
        return self.wait_until(lambda: self.page.inner_text(hover), "a hover", timeout)

    def codelens_texts(self) -> list[str]:
        return [t.strip() for t in self.page.eval_on_selector_all(
            f"{self._editor()} .codelens-decoration", "els => els.map(e => e.innerText)")
            if t.strip()]

    # - pictures

    def screenshot(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path
