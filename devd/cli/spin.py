"""``devd spin``: one step through the project's daemon (or in this process), its report
printed for a person or as one JSON object."""

from __future__ import annotations

import sys

from ..common.optiontable import SPIN_SPELLINGS, spin_params
from .client import file_uri
from .daemons import daemon_for
from .terminal import EXIT_OK, EXIT_STEP_FAILED, echo, log_printer, print_debug_ready

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ..common.optiontable import Spelling


def _pairs(values: list[list[str]] | None) -> dict[str, str]:
    return {pair[0]: pair[1] for pair in values or []}  # argparse gives [NAME, VALUE] lists


def cmd_spin(args: argparse.Namespace) -> int:
    from ..common.errors import DevdError

    if args.pdb and args.debug_spin:
        raise DevdError("--pdb and --debug are two ways to debug: pick one (--pdb in this "
                        "terminal, --debug for a DAP client such as VS Code)")
    if args.pdb and args.json:
        raise DevdError("--pdb talks to you in this terminal: leave out --json")
    stream = None if args.json else echo
    # --pdb needs this terminal, so the step runs in this process, not in the daemon's child
    client = None if args.no_daemon or args.pdb else daemon_for(args.flow, "if-died")
    if client is not None:
        with client:
            data = client.request("devd/spin", _spin_params(args),
                                  on_notification=log_printer(stream))
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
                                  on_debug_ready=print_debug_ready)
        progress_line.done()
        from ..lsp.models import shared_converter  # the JSON a daemon would have answered

        data = shared_converter().unstructure(result.report())
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
    """``devd/spin``'s params for this command line (devd/common/optiontable.py's builder)."""
    options = {row.field: value for row, value in _given_options(args)}
    return {**spin_params(file_uri(args.flow), args.target, options),
            "workDoneToken": "devd-cli"}  # parents downloading: $/progress


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
