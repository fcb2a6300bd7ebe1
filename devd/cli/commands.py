"""The ``devd`` commands other than ``spin``: run and resume, card, graph and runs, status,
daemon, serve and mcp. Each imports what it needs when it runs."""

from __future__ import annotations

import os
import sys

from ..common.optiontable import target_params
from .client import file_uri
from .daemons import daemon_for
from .terminal import EXIT_OK, echo, log_printer

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from ..core.runner import RunOutcome


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

    client = daemon_for(flow, "if-died")
    if client is not None:
        if not os.path.isfile(flow):
            from ..common.errors import DevdError

            raise DevdError(f"{flow}: no such file; pass the path of your flow's .py file")
        with client:
            data = client.request(f"devd/{verb}", {"uri": file_uri(flow), "args": extra},
                                  on_notification=log_printer(echo))
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

    from ..common.project import private_dir

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
        client = daemon_for(args.flow)
        step = args.target
        if client is not None:
            with client:
                params = {"uri": file_uri(args.flow), **target_params(args.target),
                          "spinIfMissing": True}
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
    from ..common.project import project_root

    client = daemon_for(args.path)
    if client is None:
        from ..common.project import daemon_paths

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
    from ..common.project import daemon_paths, project_root
    from . import daemons

    root = project_root(args.path)
    paths = daemon_paths(root)
    if args.action == "start":
        was_running = daemons.socket_alive(paths)
        pid = daemons.start_background(root, args.idle_timeout, args.budget_mb, args.tcp)
        state = "already running" if was_running else "started"
        print(f"devd: daemon {state} (pid {pid}) for {root}; socket {paths.socket}")
        return EXIT_OK
    if args.action == "stop":
        stopped = daemons.stop(root)
        print(f"devd: daemon {'stopped' if stopped else 'was not running'} for {root}")
        return EXIT_OK
    if daemons.socket_alive(paths):
        info = paths.read_info()
        print(f"devd: daemon running (pid {info.get('pid')}) for {root}; socket {paths.socket}")
    else:
        stale = daemons.clear_stale(paths)
        print(f"devd: no daemon for {root}" + (" (removed stale files)" if stale else ""))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from ..common.project import project_root
    from .daemons import relay_stdio

    return relay_stdio(project_root(args.root))


def cmd_mcp(args: argparse.Namespace) -> int:
    from .mcp import main as serve_mcp

    return serve_mcp(args.root)
