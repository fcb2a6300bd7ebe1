"""``devd``: spin a step, run or resume a flow, from a terminal.

Kept light on purpose: heavy modules (metaflow, the engine) are imported only by
the command that needs them.
"""

from __future__ import annotations

import sys

from ..common.optiontable import SPIN_SPELLINGS
from .terminal import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    PIPE_CLOSED,
    quietly,
    silence_stdout,
)

# Not imported here: argparse, json, typing. Each pulls in `re`; a `devd spin` answered
# by a warm daemon must be done in the time they take to import (see _quick_spin_args).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any


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
        return _handler(args.command)(args)
    except DevdError as exc:  # also every failure talking to a daemon (project.DaemonError)
        if args.debug:
            raise
        return _fail(args, _with_next_step(exc, args), "devd.BadRequest",
                     getattr(exc, "exit_code", EXIT_BAD_INPUT))
    except KeyboardInterrupt:
        return EXIT_BROKEN_PIPE if PIPE_CLOSED else 130
    except BrokenPipeError:  # `devd spin ... | head`: the reader left; leave quietly
        silence_stdout()
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


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    """The command's function (devd/cli/spin.py, devd/cli/commands.py), imported when run."""
    if command == "spin":
        from .spin import cmd_spin

        return cmd_spin
    from . import commands

    handler: Callable[[argparse.Namespace], int] = getattr(commands, f"cmd_{command}")
    return handler


def _fail(args: object, message: str, kind: str, code: int) -> int:
    """One line on stderr (and, for --json, one JSON object on stdout); the exit code."""
    if getattr(args, "json", False):  # scripts read one JSON object, also for bad input
        from .wire import dumps

        quietly(print, dumps({"ok": False, "error": {"type": kind, "message": message},
                               "next": f"the spin did not start: {message}",
                               "nextCommand": None}))
    print(f"devd: {message}", file=sys.stderr)
    return code


def _with_next_step(exc: Exception, args: object) -> str:
    """The error's line; a daemon's own error also says where the daemon logged why."""
    from .client import RpcError

    if not isinstance(exc, RpcError):
        return str(exc)
    from ..common.project import daemon_paths, project_root

    where = getattr(args, "flow", None) or getattr(args, "path", None) or "."
    return f"{exc}; the daemon's log says why: {daemon_paths(project_root(where)).log}"
