"""The `devd` command line, as a user types it: real processes, real Metaflow runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


def devd(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devd.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=os.environ)


def test_spin_prints_an_artifact_table_and_next_steps(in_project: Path) -> None:
    out = devd(in_project, "spin", "linear_flow.py", "double")
    assert out.returncode == 0, out.stderr
    assert "LinearFlow/double: ok" in out.stdout
    assert "y is 12" in out.stdout  # the step's own print, streamed
    rows = [line.split() for line in out.stdout.splitlines()]
    assert ["y", "int", "12"] in rows
    assert ["x", "list", "len", "3:", "[1,", "2,", "3]"] in rows
    assert "next: end" in out.stdout


def test_spin_json_is_one_object_for_scripts(in_project: Path) -> None:
    out = devd(in_project, "spin", "foreach_flow.py", "join", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] is True and data["step"] == "join"
    rows = {r["name"]: r for r in data["artifacts"]}
    assert rows["order"]["summary"].startswith("len 6")
    assert data["nextSteps"] == ["end"]
    assert len(data["parents"]) == 6


def test_failing_step_exits_nonzero_with_file_line_type_message(in_project: Path) -> None:
    out = devd(in_project, "spin", "fail_flow.py", "train")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(str(in_project / "fail_flow.py") + ":")
    assert ": ValueError: kk=5 is below 10" in last
    data = json.loads(devd(in_project, "spin", "fail_flow.py", "train", "--json").stdout)
    assert data["ok"] is False and data["error"]["type"] == "ValueError"
    assert isinstance(data["error"]["line"], int)


def test_artifacts_module_config_value_and_persist_options(in_project: Path) -> None:
    module = in_project / "cli_overrides.py"
    module.write_text("ARTIFACTS = {'kk': 21}\n")
    out = devd(in_project, "spin", "fail_flow.py", "train", "--artifacts-module", str(module),
               "--json")
    assert json.loads(out.stdout)["ok"] is True
    out = devd(in_project, "spin", "config_flow.py", "train", "--config-value", "settings",
               '{"lr": 0.7, "tag": "cli"}', "--json")
    rows = {r["name"]: r for r in json.loads(out.stdout)["artifacts"]}
    assert rows["lr"]["summary"] == "0.7" and rows["env_tag"]["summary"].endswith("'cli'")
    out = devd(in_project, "spin", "linear_flow.py", "double", "--persist")
    assert out.returncode == 0 and "persisted: LinearFlow/" in out.stdout


def test_bad_input_is_one_line_without_traceback(in_project: Path) -> None:
    cases = [
        (("spin", "missing.py", "start"), "no such file"),
        (("spin", "linear_flow.py", "nope"), "its steps are: start, double, end"),
        (("spin", "config_flow.py", "train", "--config-value", "settings", "{bad"),
         "not valid JSON"),
        (("spin", "linear_flow.py", "double", "--artifacts-module", "nowhere.py"),
         "no such artifacts module"),
    ]
    for args, message in cases:
        out = devd(in_project, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_run_and_resume_are_metaflows_own(in_project: Path) -> None:
    # a flow of its own: a new run must not change the parents other tests spin from
    source = (in_project / "linear_flow.py").read_text().replace("LinearFlow", "RunCliFlow")
    (in_project / "run_cli_flow.py").write_text(source)
    out = devd(in_project, "run", "run_cli_flow.py", "--alpha", "5")
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[-1].split("run id ")[-1]
    from metaflow import Run

    assert Run(f"RunCliFlow/{run_id}").data.z == 31
    # the newest run is now the default parent of a spin
    spun = json.loads(devd(in_project, "spin", "run_cli_flow.py", "double", "--json").stdout)
    assert spun["originRunId"] == run_id
    out = devd(in_project, "resume", "run_cli_flow.py", "double", "--origin-run-id", run_id)
    assert out.returncode == 0, out.stderr
    assert "resume finished: run id" in out.stdout


SPIN_LINES = [
    ["spin", "flow.py", "train"],
    ["--debug", "spin", "flow.py", "train", "--json"],
    ["spin", "--json", "flow.py", "--persist", "1/train"],
    ["spin", "flow.py", "F/1/train/2", "--from-spin", "--no-daemon"],
    ["spin", "flow.py", "train", "--artifacts-module", "a.py"],
    ["spin", "flow.py", "train", "--config", "cfg", "c.json", "--config", "other", "o.json"],
    ["spin", "flow.py", "train", "--config-value", "cfg", '{"a": 1}'],
    ["spin", "my flow.py", "tr ain"],
    ["spin", "flow.py", "train", "--debug"],  # the spin's --debug (a debugger), not devd's
    ["--debug", "spin", "flow.py", "train", "--pdb"],
    ["spin", "flow.py", "train", "--debug", "--debug-timeout", "5"],
]
NOT_QUICK = [
    ["spin", "flow.py", "train", "--debug-timeout", "soon"],  # argparse's type refuses it
    ["spin", "flow.py", "train", "--json=1"],
    ["spin", "flow.py", "train", "--jso"],  # an abbreviation: argparse's business
    ["spin", "flow.py", "train", "--artifacts-module", "-x.py"],
    ["spin", "flow.py", "train", "--config", "cfg"],
    ["spin", "flow.py"],
    ["spin", "flow.py", "train", "extra"],
    ["spin", "-h"],
    ["spin", "flow.py", "train", "--", "x"],
    ["status"],
    [],
]


def _every_option_line() -> list[list[str]]:
    """One line a row of SPIN_SPELLINGS (pairs twice), and one with all of them."""
    from devd.common.optiontable import SPIN_SPELLINGS

    lines = []
    for row in SPIN_SPELLINGS:
        if row.flag is None:
            continue
        if row.kind == "flag":
            words = [row.flag]
        elif row.kind == "value":
            words = [row.flag, {"float": "2.5", "int": "2"}.get(row.value_type, "x.py")]
        elif row.kind == "many":
            words = [row.flag, "a", row.flag, "b"]
        else:
            words = [row.flag, "a", "1", row.flag, "b", "2"]
        lines.append(["spin", "flow.py", "train", *words])
    lines.append([word for line in lines for word in line[3:]])
    lines[-1][:0] = ["spin", "flow.py", "train"]
    return lines


@pytest.mark.parametrize("argv", SPIN_LINES + _every_option_line(), ids=" ".join)
def test_quick_spin_arguments_read_as_argparse_reads_them(argv: list[str]) -> None:
    from devd.cli.main import _quick_spin_args, build_parser

    quick = _quick_spin_args(argv)
    assert quick is not None
    assert vars(quick) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", NOT_QUICK, ids=" ".join)
def test_everything_else_goes_to_argparse(argv: list[str]) -> None:
    from devd.cli.main import _quick_spin_args

    assert _quick_spin_args(argv) is None


def test_a_spin_answered_by_a_daemon_imports_neither_argparse_nor_json() -> None:
    """What `devd spin` loads before it talks to the daemon (imports cost it most)."""
    code = (
        "import sys; from devd.cli.main import _quick_spin_args; "
        "from devd.cli.spin import print_result; "
        "from devd.cli.client import connect, file_uri; "
        "from devd.common.project import daemon_paths, project_root; "
        "from devd.cli.agent import add_agent_fields; "
        "_quick_spin_args(['spin', 'f.py', 's', '--json']); file_uri('f.py'); "
        "add_agent_fields({'ok': False, 'step': 's', 'error': {'type': 'E', 'file': 'f.py', "
        "'line': 1}}, 'f.py'); "
        "print(sorted(m for m in ('argparse', 'json', 're', 'typing', 'socket', 'hashlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, -3, "é ✓ \n \"q\"", True, False, None], "b": {}, "c": []},
    [float("inf"), 1e300, "\\u1234", {"nested": {"x": [[]]}}],
    "plain", 0, None,
])
def test_wire_json_is_json(value) -> None:
    import json

    from devd.cli import wire

    assert wire.dumps(value) == json.dumps(value)
    assert wire.loads(json.dumps(value)) == json.loads(json.dumps(value))
    assert wire.loads(json.dumps(value).encode()) == json.loads(json.dumps(value))


def test_wire_refuses_what_json_refuses() -> None:
    import json

    from devd.cli import wire

    with pytest.raises(json.JSONDecodeError):
        wire.loads('{"a": 1} trailing')
    with pytest.raises(TypeError):
        wire.dumps({"a": object()})
    assert wire.dumps({"a": object()}, default=lambda o: "x") == '{"a": "x"}'


def test_artifacts_module_failures_name_the_real_cause(in_project: Path) -> None:
    """Metaflow's read_artifacts_module says `name 'MetaflowInternalError' is not defined`
    for every failure; devd names the cause (and where, when it is a line of the module)."""
    modules = {
        "am_text.txt": ("ARTIFACTS = {'x': [5]}\n", "am_text.txt: not a .py file"),
        "am_none.py": ("x = 1\n", "am_none.py: defines no ARTIFACTS"),
        "am_raises.py": ("import os\nraise ValueError('no overrides today')\n",
                         "am_raises.py:2: importing the artifacts module raised "
                         "ValueError: no overrides today"),
        "am_import.py": ("import devd_no_such_module_zz\n",
                         "am_import.py:1: importing the artifacts module raised "
                         "ModuleNotFoundError: No module named 'devd_no_such_module_zz'"),
        "am_list.py": ("ARTIFACTS = [1]\n", "ARTIFACTS must be a dict, not list"),
        "am_syntax.py": ("ARTIFACTS = {\n", "am_syntax.py:1: SyntaxError"),
    }
    for name, (text, message) in modules.items():
        (in_project / name).write_text(text)
        out = devd(in_project, "spin", "linear_flow.py", "double", "--artifacts-module", name)
        assert out.returncode == 2, (name, out.stdout, out.stderr)
        assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
        assert "MetaflowInternalError" not in out.stderr and "Traceback" not in out.stderr


def test_json_prints_a_json_error_object_on_bad_input(in_project: Path) -> None:
    for args in (("spin", "missing.py", "start"), ("spin", "linear_flow.py", "nope"),
                 ("spin", "linear_flow.py", "double", "--artifacts-module", "nowhere.py")):
        out = devd(in_project, *args, "--json")
        assert out.returncode == 2, out.stderr
        data = json.loads(out.stdout)
        assert data["ok"] is False and data["error"]["type"] == "devd.BadRequest"
        assert data["error"]["message"] in out.stderr
        assert data["next"] == f"the spin did not start: {data['error']['message']}"
        assert data["nextCommand"] is None


def test_json_tells_an_agent_where_it_failed_and_what_to_run_next(in_project: Path) -> None:
    failed = json.loads(devd(in_project, "spin", "fail_flow.py", "train", "--json").stdout)
    line = next(i for i, text in enumerate((in_project / "fail_flow.py").read_text()
                                          .splitlines(), 1) if "raise ValueError" in text)
    error = failed["error"]
    assert error["where"] == f"fail_flow.py:{line}" and error["line"] == line
    assert error["source"] == 'raise ValueError(f"kk={self.kk} is below {self.threshold}")'
    assert failed["nextCommand"] == "devd spin fail_flow.py train --json"
    assert failed["next"].startswith(f"fix fail_flow.py:{line} (ValueError: kk=5 is below 10)")
    assert failed["warnings"] == []

    middle = json.loads(devd(in_project, "spin", "linear_flow.py", "double", "--json").stdout)
    assert middle["nextCommand"] == "devd spin linear_flow.py end --json"
    assert "devd run linear_flow.py" in middle["next"]  # record a changed step first
    assert {"name": "y", "type": "int", "summary": "12"} in middle["artifacts"]
    last = json.loads(devd(in_project, "spin", str(in_project / "linear_flow.py"), "end",
                           "--json").stdout)
    assert last["ok"] is True and last["nextCommand"] == "devd run linear_flow.py"


def test_agent_fields_name_stale_parents_and_quote_paths(tmp_path: Path) -> None:
    from devd.cli.agent import add_agent_fields

    data = {"ok": True, "step": "train", "nextSteps": ["join"], "originRunId": "17",
            "stale": [{"step": "start", "reason": "code of step 'start' changed since run 17"}]}
    add_agent_fields(data, "my flows/flow.py")
    assert data["warnings"] == ["code of step 'start' changed since run 17: the parents do "
                                "not reflect it; `devd run 'my flows/flow.py'` records them "
                                "again"]
    assert data["nextCommand"] == "devd run 'my flows/flow.py'"
    assert "devd spin 'my flows/flow.py' train --json" in data["next"]
    tools = add_agent_fields({"ok": True, "step": "a", "nextSteps": ["b", "c"]}, "f.py",
                             tools=True)
    assert tools["nextCommand"] == 'spin(flow="f.py", step="b")'
    assert 'spin(flow="f.py", step="c")' in tools["next"]
    chained = add_agent_fields({"ok": True, "step": "a", "nextSteps": ["b"]}, "f.py",
                               from_spin=True)
    assert chained["nextCommand"] == "devd spin f.py b --from-spin --json"
    assert "devd run" not in chained["next"]  # the next step chains on this spin: no run
    stale_chain = add_agent_fields({"ok": True, "step": "b", "nextSteps": ["c"], "stale": [
        {"step": "a", "reason": "code of step 'a' changed since its last spin"}]}, "f.py",
        from_spin=True)
    assert stale_chain["nextCommand"] == "devd spin f.py a --json"  # spin the parent again
    assert stale_chain["warnings"] == ["code of step 'a' changed since its last spin: the "
                                       "parents do not reflect it; `devd spin f.py a --json` "
                                       "records them again"]


NOISY_FLOW = '''
import threading
from metaflow import FlowSpec, step


class NoisyFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.talk)

    @step
    def talk(self):
        self.lock = threading.Lock()
        self.y = self.x + 1
        for i in range(20000):
            print("line", i)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NoisyFlow()
'''


@pytest.fixture(scope="module")
def noisy_flow(project: Path) -> Path:
    from conftest import run_flow

    flow = project / "noisy_flow.py"
    flow.write_text(NOISY_FLOW.replace("self.lock = threading.Lock()", "self.lock = None"))
    run_flow(project, "noisy_flow.py")
    flow.write_text(NOISY_FLOW)  # now the step sets an artifact Metaflow cannot store
    return flow


def test_unpicklable_artifact_is_named_in_every_spin(in_project: Path, noisy_flow: Path) -> None:
    out = devd(in_project, "spin", "noisy_flow.py", "talk", "--json")
    assert out.returncode == 0, out.stderr
    notices = json.loads(out.stdout)["notices"]
    assert any("`lock` cannot be pickled" in n and "_thread.lock" in n for n in notices), notices
    result = devd_api_spin(in_project)
    assert any("`lock` cannot be pickled" in n for n in result.notices), result.notices
    assert result.ok and result.artifacts["y"] == 2


def devd_api_spin(cwd: Path):
    import devd as api

    return api.spin(str(cwd / "noisy_flow.py"), "talk")


def test_spin_piped_into_head_exits_quietly(in_project: Path, noisy_flow: Path) -> None:
    for extra in ("--no-daemon", "--json"):
        out = subprocess.run(
            f"{sys.executable} -m devd.cli spin noisy_flow.py talk {extra} | head -c 20; "
            "echo; echo status ${PIPESTATUS[0]}",
            shell=True, executable="/bin/bash", cwd=in_project, capture_output=True,
            text=True, timeout=300, env=os.environ)
        assert out.stderr == "", out.stderr
        assert out.stdout.splitlines()[-1] in ("status 141", "status 0"), out.stdout


def test_step_output_is_capped_and_the_full_text_kept_in_a_file(
        in_project: Path, noisy_flow: Path, tmp_path: Path) -> None:
    """As Metaflow's `run --max-log-size`: past DEVD_MAX_LOG_MB the output is summarised
    (neither streamed, kept in memory nor returned), the full text is in a file."""
    env = {**os.environ, "DEVD_MAX_LOG_MB": "0.05", "DEVD_RUNTIME_DIR": str(tmp_path / "rt")}
    full = "".join(f"line {i}\n" for i in range(20000))
    for how in ("--no-daemon", "daemon"):
        if how == "daemon":
            started = subprocess.run([sys.executable, "-m", "devd.cli", "daemon", "start"],
                                     cwd=in_project, env=env, capture_output=True, text=True,
                                     timeout=120)
            assert started.returncode == 0, started.stderr
        args = ["--json"] + ([how] if how != "daemon" else [])
        try:
            out = subprocess.run([sys.executable, "-m", "devd.cli", "spin", "noisy_flow.py",
                                  "talk", *args], cwd=in_project, env=env,
                                 capture_output=True, text=True, timeout=300)
        finally:
            if how == "daemon":
                subprocess.run([sys.executable, "-m", "devd.cli", "daemon", "stop"],
                               cwd=in_project, env=env, capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr
        stdout = json.loads(out.stdout)["stdout"]
        assert len(stdout) < 50_000 + 400, len(stdout)
        assert stdout.startswith("line 0\nline 1\n")
        note = stdout.rstrip("\n").splitlines()[-1]
        assert note.startswith("[devd: stdout truncated at 0.05 MB (DEVD_MAX_LOG_MB): "), note
        kept = stdout[:stdout.rindex("\n[devd: stdout truncated")]
        more = len(full) - len(kept)
        assert f"{more} more bytes, {full[len(kept):].count(chr(10))} more lines" in note
        path = Path(note.rsplit(" in ", 1)[1].rstrip("]"))
        assert path.read_text() == full, how
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        path.unlink()


@pytest.mark.parametrize("failure,code,line", [
    (lambda: __import__("devd.cli.client", fromlist=["RpcError"]).RpcError(-32603, "boom\nmore"),
     3, "devd: the daemon answered error -32603: boom; the daemon's log says why: "),
    (lambda: FileNotFoundError(2, "No such file or directory", "/nowhere/x.html"),
     2, "devd: /nowhere/x.html: No such file or directory; check the path and its permissions"),
    (lambda: RuntimeError("a bug"),
     4, "devd: internal error (RuntimeError: a bug); run it again as `devd --debug ...` for the "
        "traceback, and report it"),
])
def test_every_cli_failure_is_one_line_saying_what_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        failure: Callable[[], Exception], code: int, line: str) -> None:
    """A daemon's error, a file devd cannot write, a bug of devd's own: one line on stderr,
    the documented exit code, and --debug still shows the traceback."""
    from devd.cli import commands
    from devd.cli import main as cli

    def fail(args: object) -> int:
        raise failure()

    monkeypatch.setattr(commands, "cmd_status", fail)
    assert cli.main(["status", str(tmp_path)]) == code
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1, err
    if code == 3:
        assert err.rstrip().endswith(".log"), err
    with pytest.raises(type(failure())):
        cli.main(["--debug", "status", str(tmp_path)])


def test_every_client_builds_spin_params_from_the_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One builder for devd/spin's params: each option by its row's wire name (paths made
    absolute), a target with a "/" as pathspec; the MCP tool's spin options are rows too."""
    import inspect

    from devd.cli.mcp import Tools
    from devd.common.optiontable import SPIN_SPELLINGS, spin_params, target_params

    assert target_params("train") == {"step": "train"}
    assert target_params("12/train") == {"pathspec": "12/train"}
    assert target_params("F/12/train/3") == {"pathspec": "F/12/train/3"}
    given = {"artifacts": {"x": 1}, "config": {"c": "c.toml"}, "from_spin": True,
             "environment": None, "pdb": True}
    monkeypatch.chdir(tmp_path)
    params = spin_params("file:///f.py", "train", given)
    assert params == {"uri": "file:///f.py", "step": "train", "artifacts": {"x": 1},
                      "config": {"c": os.path.join(os.getcwd(), "c.toml")}, "fromSpin": True}
    rows = {row.field for row in SPIN_SPELLINGS if row.wire}
    tool = inspect.signature(Tools.spin).parameters
    assert set(tool) - {"self", "flow", "step"} <= rows
