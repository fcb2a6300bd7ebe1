"""``devd``: spin a step, run or resume a flow, from a terminal.

Kept light on purpose: heavy modules (metaflow, the engine) are imported only by
the command that needs them.
"""

from __future__ import annotations

import os
import sys

from ..common.optiontable import SPIN_SPELLINGS
from .client import file_uri

# Not imported here: argparse, json, typing. Each pulls in `re`; a `devd spin` answered
# by a warm daemon must be done in the time they take to import (see _quick_spin_args).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    from ..common.optiontable import Spelling
    from ..core.runner import RunOutcome
    from .client import DaemonClient, Notification

EXIT_OK, EXIT_STEP_FAILED, EXIT_BAD_INPUT, EXIT_DAEMON = 0, 1, 2, 3
EXIT_INTERNAL = 4  # devd itself failed (a bug): one line; `devd --debug` shows the traceback


def _pairs(values: list[list[str]] | None) -> dict[str, str]:
    return {pair[0]: pair[1] for pair in values or []}  # argparse gives [NAME, VALUE] lists


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; with ``only``, just that command's (faster to build)."""
    import argparse

    def want(command: str) -> bool:
        return only is None or only == command

    parser = argparse.ArgumentParser(
        prog="devd",
        description="The instant inner loop for Metaflow: spin one step on warm parents.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of devd errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    if want("spin"):
        spin = sub.add_parser(
            "spin", help="re-run one step with its parents' recorded state",
            description="Re-run one step of FLOW with its parents' state. STEP is a step name "
            "(parents from the newest run that has them), RUN/STEP, or Flow/RUN/STEP/TASK.",
        )
        spin.add_argument("flow", metavar="FLOW", help="the flow's .py file")
        spin.add_argument("target", metavar="STEP_OR_PATHSPEC")
        for row in SPIN_SPELLINGS:
            if row.flag is None:
                continue
            if row.kind == "flag":
                spin.add_argument(row.flag, dest=row.dest, action="store_true", help=row.doc)
            elif row.kind == "value":
                spin.add_argument(row.flag, dest=row.dest, metavar=row.metavar[0],
                                  type=_VALUE_TYPES[row.value_type], help=row.doc)
            elif row.kind == "many":
                spin.add_argument(row.flag, dest=row.dest, metavar=row.metavar[0],
                                  action="append", help=row.doc)
            else:
                spin.add_argument(row.flag, dest=row.dest, nargs=2, action="append",
                                  metavar=row.metavar, help=row.doc)
        for flag, dest, doc in _SPIN_CLI_FLAGS:
            spin.add_argument(flag, dest=dest, action="store_true", help=doc)

    if want("run"):
        run = sub.add_parser(
            "run", help="run the flow with Metaflow (python FLOW run ...)",
            description="Run FLOW with Metaflow's own `run`; any further options go to Metaflow.",
        )
        run.add_argument("flow", metavar="FLOW")
        run.add_argument("args", nargs=argparse.REMAINDER, help="options for `python FLOW run`")

    if want("resume"):
        resume = sub.add_parser(
            "resume", help="resume the flow with Metaflow (python FLOW resume ...)",
            description="Resume FLOW with Metaflow's own `resume`, from STEP if given.",
        )
        resume.add_argument("flow", metavar="FLOW")
        resume.add_argument("step", metavar="STEP", nargs="?")
        resume.add_argument("--origin-run-id", metavar="ID")
        resume.add_argument("args", nargs=argparse.REMAINDER,
                            help="options for `python FLOW resume`")

    if want("card"):
        card = sub.add_parser(
            "card", help="write the preview page of a step's spin (its cards and results)",
            description="Write the preview of the last spin of STEP (kept by a running daemon), "
            "or of a spin made now; with --recorded and a task pathspec, the cards Metaflow "
            "stored for that recorded task. Prints the file's path.",
        )
        card.add_argument("flow", metavar="FLOW")
        card.add_argument("target", metavar="STEP_OR_PATHSPEC")
        card.add_argument("-o", "--output", metavar="FILE",
                          help="where to write (default: a file in the temp directory)")
        card.add_argument("--open", action="store_true", help="open it in the web browser")
        card.add_argument("--recorded", action="store_true",
                          help="show the recorded task's own cards (needs Flow/RUN/STEP/TASK)")

    from .graphview import add_parsers

    add_parsers(sub, want)  # graph, runs

    if want("status"):
        status = sub.add_parser("status", help="what the project's daemon holds warm and runs")
        status.add_argument("path", nargs="?", default=".", metavar="FLOW_OR_DIR")
        status.add_argument("--json", action="store_true")

    if want("daemon"):
        daemon = sub.add_parser("daemon", help="start, stop or inspect the project's daemon")
        daemon.add_argument("action", choices=["start", "stop", "status"])
        daemon.add_argument("path", nargs="?", default=".", metavar="FLOW_OR_DIR",
                            help="a flow or directory of the project (default: .)")
        daemon.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                            help="exit after this long without clients or work (default 1800)")
        daemon.add_argument("--budget-mb", type=float, metavar="MB",
                            help="memory for warm parents (default: half the machine's RAM)")
        daemon.add_argument("--tcp", type=int, metavar="PORT",
                            help="also listen on 127.0.0.1:PORT (clients send the token first)")

    if want("serve"):
        serve = sub.add_parser("serve", help="language server for an editor (joins the daemon)")
        serve.add_argument("--stdio", action="store_true", required=True,
                           help="speak LSP on stdin/stdout")
        serve.add_argument("--root", default=".", help="the project directory (default: .)")

    if want("mcp"):
        mcp = sub.add_parser(
            "mcp", help="Model Context Protocol server for coding agents (stdio)",
            description="Serve devd's spin, run, card, artifacts and status as MCP tools on "
            "stdin/stdout, backed by the project's daemon (started when none runs). Needs "
            "the extra: pip install 'devd[mcp]'.")
        mcp.add_argument("--root", default=".",
                         help="the directory flow paths are relative to (default: .)")

    return parser


COMMANDS = ("spin", "run", "resume", "card", "graph", "runs", "status", "daemon", "serve",
            "mcp")


# ``devd spin``'s flags that are not options of the spin but of this command.
_SPIN_CLI_FLAGS = (
    ("--json", "json", "print one JSON object"),
    ("--no-daemon", "no_daemon", "spin in this process even when a daemon runs"),
)
_VALUE_TYPES = {"str": str, "float": float, "int": int}


class _SpinArgs:
    """The namespace argparse makes for ``spin`` (the same attributes, from the same
    tables), made without argparse."""

    def __init__(self) -> None:
        self.command = "spin"
        self.debug = False
        self.flow: str | None = None
        self.target: str | None = None
        for _, dest, _ in _SPIN_CLI_FLAGS:
            setattr(self, dest, False)
        for row in SPIN_SPELLINGS:
            if row.flag is not None:
                setattr(self, row.dest, False if row.kind == "flag" else None)


def _quick_spin_args(argv: list[str]) -> _SpinArgs | None:
    """``devd spin`` arguments in their plain forms, read without importing argparse.

    Anything else (help, ``--opt=value``, abbreviations, a value that looks like an
    option or that argparse's type refuses, a mistake) returns None, and argparse reads
    the line as usual: whatever this accepts, argparse reads the same way
    (tests/test_cli.py checks it for every row of ``SPIN_SPELLINGS``).
    """
    args = _SpinArgs()
    i = 0
    while i < len(argv) and argv[i] == "--debug":
        args.debug = True
        i += 1
    if i >= len(argv) or argv[i] != "spin":
        return None
    command_flags = {flag: dest for flag, dest, _ in _SPIN_CLI_FLAGS}
    options = {row.flag: row for row in SPIN_SPELLINGS if row.flag is not None}
    positionals: list[str] = []
    rest = argv[i + 1:]
    j = 0
    while j < len(rest):
        token = rest[j]
        row = options.get(token)
        if not token.startswith("-"):
            positionals.append(token)
        elif token in command_flags:
            setattr(args, command_flags[token], True)
        elif row is None:
            return None
        elif row.kind == "flag":
            setattr(args, row.dest, True)
        else:
            count = len(row.metavar)
            values = rest[j + 1:j + 1 + count]
            if len(values) < count or any(v.startswith("-") for v in values):
                return None
            if row.kind == "value":
                try:
                    setattr(args, row.dest, _VALUE_TYPES[row.value_type](values[0]))
                except ValueError:
                    return None
            elif row.kind == "many":
                setattr(args, row.dest, (getattr(args, row.dest) or []) + values)
            else:
                setattr(args, row.dest, (getattr(args, row.dest) or []) + [values])
            j += count
        j += 1
    if len(positionals) != 2:
        return None
    args.flow, args.target = positionals
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args: Any = _quick_spin_args(argv)
    if args is None:
        named = next((a for a in argv if not a.startswith("-")), None)
        parser = build_parser(named if named in COMMANDS else None)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_BAD_INPUT
    from ..common.errors import DevdError

    try:
        handler = {"spin": cmd_spin, "run": cmd_run, "resume": cmd_resume, "card": cmd_card,
                   "graph": cmd_graph, "runs": cmd_runs, "status": cmd_status,
                   "daemon": cmd_daemon, "serve": cmd_serve, "mcp": cmd_mcp}[args.command]
        return handler(args)
    except DevdError as exc:  # also every failure talking to a daemon (project.DaemonError)
        if args.debug:
            raise
        return _fail(args, _with_next_step(exc, args), "devd.BadRequest",
                     getattr(exc, "exit_code", EXIT_BAD_INPUT))
    except KeyboardInterrupt:
        return EXIT_BROKEN_PIPE if _PIPE_CLOSED else 130
    except BrokenPipeError:  # `devd spin ... | head`: the reader left; leave quietly
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # a file devd was told to read or write (`card -o DIR/x.html`...)
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(args, f"{where}{exc.strerror or exc}; check the path and its "
                     "permissions", "devd.BadRequest", EXIT_BAD_INPUT)
    except Exception as exc:  # a bug in devd: still one line, never a traceback
        if args.debug:
            raise
        return _fail(args, f"internal error ({type(exc).__name__}: {exc}); run it again as "
                     "`devd --debug ...` for the traceback, and report it", "devd.InternalError",
                     EXIT_INTERNAL)


def _fail(args: object, message: str, kind: str, code: int) -> int:
    """One line on stderr (and, for --json, one JSON object on stdout); the exit code."""
    if getattr(args, "json", False):  # scripts read one JSON object, also for bad input
        from .wire import dumps

        _quietly(print, dumps({"ok": False, "error": {"type": kind, "message": message},
                               "next": f"the spin did not start: {message}",
                               "nextCommand": None}))
    print(f"devd: {message}", file=sys.stderr)
    return code


def _with_next_step(exc: Exception, args: object) -> str:
    """The error's line; a daemon's own error also says where the daemon logged why."""
    from .client import RpcError

    if not isinstance(exc, RpcError):
        return str(exc)
    from ..core.project import daemon_paths, project_root

    where = getattr(args, "flow", None) or getattr(args, "path", None) or "."
    return f"{exc}; the daemon's log says why: {daemon_paths(project_root(where)).log}"


EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a writer killed by SIGPIPE
_PIPE_CLOSED: list[bool] = []  # set once stdout's reader has gone


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _quietly(write: Callable[..., object], *args: object) -> None:
    try:
        write(*args)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _daemon_for(path: str, restart: bool = False) -> DaemonClient | None:
    """A connection to the running daemon of ``path``'s project, or None.

    With ``restart``, a daemon that died without cleaning up (its socket file is still
    there: killed, or crashed) is replaced by a fresh one rather than the command
    quietly running in this process; a daemon of another interpreter is never joined
    (devd/cli/client.py's daemon_client: the rule every client shares).
    """
    from ..core.project import daemon_paths, project_root
    from .client import daemon_client

    return daemon_client(daemon_paths(project_root(path)), "if-died" if restart else "never")


def cmd_spin(args: argparse.Namespace) -> int:
    from ..common.errors import DevdError

    if args.pdb and args.debug_spin:
        raise DevdError("--pdb and --debug are two ways to debug: pick one (--pdb in this "
                        "terminal, --debug for a DAP client such as VS Code)")
    if args.pdb and args.json:
        raise DevdError("--pdb talks to you in this terminal: leave out --json")
    stream = None if args.json else _echo
    # --pdb needs this terminal, so the step runs in this process, not in the daemon's child
    client = None if args.no_daemon or args.pdb else _daemon_for(args.flow, restart=True)
    if client is not None:
        with client:
            data = client.request("devd/spin", _spin_params(args),
                                  on_notification=_log_printer(stream))
        if data.get("error") and data["error"].get("type") == "devd.BadRequest":
            raise DevdError(data["error"]["message"])
    else:
        if args.from_spin:
            raise DevdError("--from-spin chains on spins kept by a daemon: start one with "
                            "`devd daemon start` and spin the parent steps first")
        from ..common.blobcache import watch
        from ..common.options import SpinOptions
        from ..core.session import Session
        from .progressline import ProgressLine

        options = SpinOptions.of(args.target, **{row.field: value
                                                 for row, value in _given_options(args)})
        progress_line = ProgressLine()
        with Session(args.flow, warm_after_spin=False, prepare=False) as session, \
                watch(progress_line.on_progress):
            result = session.spin(options, on_output=stream, want_values=False,
                                  on_debug_ready=_print_debug_ready)
        progress_line.done()
        data = result.to_json()
    if args.json:
        from .agent import add_agent_fields
        from .wire import dumps

        print(dumps(add_agent_fields(data, args.flow, args.target, from_spin=args.from_spin),
                    default=str))
    else:
        print_result(data)
    return EXIT_OK if data["ok"] else EXIT_STEP_FAILED


def _given_options(args: argparse.Namespace) -> list[tuple[Spelling, Any]]:
    """(row of ``SPIN_SPELLINGS``, value) of every spin option on the command line; a
    value None was not given, NAME VALUE pairs come as a dict."""
    given = []
    for row in SPIN_SPELLINGS:
        if row.flag is not None:
            value = getattr(args, row.dest)
            given.append((row, _pairs(value) if row.kind == "pairs" and value else value))
    return given


def _spin_params(args: argparse.Namespace) -> dict[str, Any]:
    """``devd/spin``'s params for this command line: each given option by its wire name,
    file paths made absolute (the daemon runs in another directory)."""
    params: dict[str, Any] = {"uri": file_uri(args.flow),
                              "workDoneToken": "devd-cli"}  # parents downloading: $/progress
    params["pathspec" if "/" in args.target else "step"] = args.target
    for row, value in _given_options(args):
        if row.wire is None or value is None:
            continue
        if row.paths:
            value = {k: os.path.abspath(v) for k, v in value.items()} \
                if isinstance(value, dict) else os.path.abspath(value)
        params[row.wire] = value
    return params


def _log_printer(stream: Callable[[str, str], None] | None) -> Notification:
    progress_line = None

    def on_notification(method: str, params: Any) -> None:
        nonlocal progress_line
        if method == "devd/log" and stream is not None and isinstance(params, dict):
            stream(params.get("stream", "stdout"), params.get("text", ""))
        elif method == "$/progress":
            if progress_line is None:
                from .progressline import ProgressLine

                progress_line = ProgressLine()
            progress_line.on_lsp_progress(params)
        elif method == "devd/debugReady" and isinstance(params, dict):
            _print_debug_ready(params)

    return on_notification


def _print_debug_ready(endpoint: dict[str, Any]) -> None:
    """On stderr (stdout may be --json): where a DAP client attaches to a --debug spin."""
    from ..common.debugging import describe

    print(f"devd: {describe(endpoint)}", file=sys.stderr, flush=True)


def _echo(stream: str, text: str) -> None:
    target = sys.stdout if stream == "stdout" else sys.stderr
    try:
        target.write(text)
        target.flush()
    except BrokenPipeError:  # `| head` left: stop the spin as SIGPIPE would stop a tool
        import _thread
        import threading

        _silence_stdout()
        if threading.current_thread() is threading.main_thread():
            raise
        _PIPE_CLOSED.append(True)
        _thread.interrupt_main()  # the spin's own Ctrl-C path stops its child


def print_result(data: dict[str, Any]) -> None:
    """The human report of a spin (its JSON form): artifacts table, timing, next steps."""
    from ..common.summary import human_bytes

    status = "ok" if data["ok"] else "FAILED"
    head = f"{data['flow']}/{data['step']}: {status} in {data['durationMs']:.0f} ms"
    print(head + f"  (parents from run {data.get('originRunId')})")
    for notice in data.get("notices") or []:
        print(f"  note: {notice}")
    for mark in data.get("stale") or []:
        print(f"  stale: {mark['reason']}")
    rows = data.get("artifacts") or []
    if rows:
        name_w = max(len("artifact"), *(len(r["name"]) for r in rows))
        type_w = max(len("type"), *(len(r["type"]) for r in rows))
        print(f"  {'artifact'.ljust(name_w)}  {'type'.ljust(type_w)}  summary")
        for r in rows:
            size = human_bytes(r.get("sizeBytes"))
            summary = r["summary"] + (f"  [{size}]" if size else "")
            print(f"  {r['name'].ljust(name_w)}  {r['type'].ljust(type_w)}  {summary}")
    if data.get("persisted") and data.get("pathspec"):
        print(f"  persisted: {data['pathspec']} (read it with inspect_spin('.'))")
    if data["ok"]:
        if data.get("nextSteps"):
            print(f"  next: {', '.join(data['nextSteps'])}")
    else:
        error = data["error"]
        where = ":".join(str(part) for part in (error.get("file"), error.get("line")) if part)
        print(f"{where + ': ' if where else ''}{error['type']}: {error['message']}",
              file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    extra = [a for a in args.args if a != "--"]
    return _run_or_resume(args.flow, "run", extra)


def cmd_resume(args: argparse.Namespace) -> int:
    extra = [a for a in args.args if a != "--"]
    if args.origin_run_id:
        extra += ["--origin-run-id", args.origin_run_id]
    if args.step:
        extra = [args.step, *extra]
    return _run_or_resume(args.flow, "resume", extra)


def _run_or_resume(flow: str, verb: str, extra: list[str]) -> int:
    """Through the daemon when one runs (its warm state then follows the new run)."""
    from ..core.runner import RunOutcome

    client = _daemon_for(flow, restart=True)
    if client is not None:
        if not os.path.isfile(flow):
            from ..common.errors import DevdError

            raise DevdError(f"{flow}: no such file; pass the path of your flow's .py file")
        with client:
            data = client.request(f"devd/{verb}", {"uri": file_uri(flow), "args": extra},
                                  on_notification=_log_printer(_echo))
        if data.get("error"):  # the run could not start: one line
            from .client import refused

            raise refused(data, f"the {verb} did not start")
        outcome = RunOutcome(bool(data.get("ok")), data.get("runId"),
                             int(data.get("returncode", 0 if data.get("ok") else 1)), [])
    else:
        from ..core import runner

        outcome = runner.execute(flow, verb, extra)
    return _report_run(outcome, verb)


def _report_run(outcome: RunOutcome, verb: str) -> int:
    if outcome.run_id:
        print(f"devd: {verb} {'finished' if outcome.ok else 'failed'}: run id {outcome.run_id}")
    elif not outcome.ok:
        print(f"devd: {verb} failed before a run started (exit {outcome.returncode})",
              file=sys.stderr)
    return outcome.returncode


def _write_preview(output: str | None, flow: str, step: str, html: str) -> str:
    """Write the page; its path. ``-o FILE`` is written as the user named it; the default
    is ``<flow>-<step>.html`` in the user's own ``0700`` previews directory, replaced in one
    step (a new file renamed over the old name): a shared temp directory would let another
    user plant a symlink or a file there and have devd write through it."""
    if output:
        path = os.path.abspath(output)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(html)
        return path
    import tempfile

    from ..core.project import private_dir

    folder = private_dir("previews")
    name = os.path.splitext(os.path.basename(flow))[0]
    path = os.path.join(folder, f"{name}-{step.replace('/', '-')}.html")
    fd, temp = tempfile.mkstemp(prefix=".preview-", suffix=".html", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return path


def cmd_card(args: argparse.Namespace) -> int:
    if args.recorded:
        from ..core.preview import render_recorded

        html, step = render_recorded(args.flow, args.target)
    else:
        client = _daemon_for(args.flow)
        step = args.target
        if client is not None:
            with client:
                params = {"uri": file_uri(args.flow), "step" if "/" not in args.target
                          else "pathspec": args.target, "spinIfMissing": True}
                data = client.request("devd/card", params)
            if not data.get("ok"):
                from .client import refused

                raise refused(data, "no preview")
            html = data["preview"]
        else:
            from ..core.preview import recorded_hashes, render_preview
            from ..core.session import Session

            with Session(args.flow, warm_after_spin=False, prepare=False) as session:
                result = session.spin(args.target, diff=True, want_values=False)
            html = render_preview(result, recorded=recorded_hashes(result))
            step = result.step
    path = _write_preview(args.output, args.flow, step, html)
    print(path)
    if args.open:
        import webbrowser

        webbrowser.open("file://" + path)
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from .graphview import cmd_graph as graph  # imported only for it: `devd spin` stays lean

    return graph(args)


def cmd_runs(args: argparse.Namespace) -> int:
    from .graphview import cmd_runs as runs

    return runs(args)


def cmd_status(args: argparse.Namespace) -> int:
    from ..core.project import project_root

    client = _daemon_for(args.path)
    if client is None:
        from ..core.project import daemon_paths

        paths = daemon_paths(project_root(args.path))
        other = paths.other_interpreter() if os.path.exists(paths.socket) else None
        if other is not None:  # one daemon, one interpreter: not ours to ask
            print(f"devd: the daemon for {paths.root} runs {other}, not {sys.executable}; "
                  f"`{other} -m devd.cli status` shows it (a spin from this interpreter "
                  "replaces it)")
            return EXIT_OK
        print(f"devd: no daemon runs for {project_root(args.path)} (start one with "
              "`devd daemon start`)")
        return EXIT_OK
    with client:
        data = client.request("devd/status")
    if args.json:
        from .wire import dumps

        print(dumps(data))
        return EXIT_OK
    from ..common.summary import human_bytes

    print(f"daemon pid {data['pid']} for {data['root']}")
    print(f"  warm: {human_bytes(data['warmBytes'])} of {human_bytes(data['budgetBytes'])} "
          f"budget, {len(data['warm'])} task(s)")
    for task in data["warm"]:
        print(f"    {task['pathspec']}  {human_bytes(task['sizeBytes'])}")
    memory = data.get("memory") or {}
    if memory.get("rssBytes"):
        arenas = memory.get("mallocArenas")
        print(f"  daemon process: {human_bytes(memory['rssBytes'])} resident"
              + (f", {arenas} malloc arena(s)" if arenas else ""))
    for work in data["running"]:
        print(f"  running: {work['kind']} {work.get('step') or ''} ({work['seconds']} s)")
    for flow in data["flows"]:
        print(f"  flow: {flow}")
    for prepared in data.get("prepared") or []:
        print(f"  prepared: a child for the next spin of {prepared['step']} "
              f"(pid {prepared['pid']})")
    for worker in data.get("workers") or []:
        print(f"  worker: {worker['environment']} in {worker['python']} (pid {worker['pid']}, "
              f"{human_bytes(worker['warmBytes'])} warm, {worker['spins']} spin(s), idle "
              f"{worker['idleS']} s)")
    return EXIT_OK


def cmd_daemon(args: argparse.Namespace) -> int:
    from ..core.project import daemon_paths, project_root
    from ..lsp import daemon

    root = project_root(args.path)
    paths = daemon_paths(root)
    if args.action == "start":
        was_running = daemon.socket_alive(paths)
        pid = daemon.start_background(root, args.idle_timeout, args.budget_mb, args.tcp)
        state = "already running" if was_running else "started"
        print(f"devd: daemon {state} (pid {pid}) for {root}; socket {paths.socket}")
        return EXIT_OK
    if args.action == "stop":
        stopped = daemon.stop(root)
        print(f"devd: daemon {'stopped' if stopped else 'was not running'} for {root}")
        return EXIT_OK
    if daemon.socket_alive(paths):
        info = paths.read_info()
        print(f"devd: daemon running (pid {info.get('pid')}) for {root}; socket {paths.socket}")
    else:
        stale = daemon.clear_stale(paths)
        print(f"devd: no daemon for {root}" + (" (removed stale files)" if stale else ""))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from ..core.project import project_root
    from ..lsp.daemon import relay_stdio

    return relay_stdio(project_root(args.root))


def cmd_mcp(args: argparse.Namespace) -> int:
    from .mcp import main as serve_mcp

    return serve_mcp(args.root)
