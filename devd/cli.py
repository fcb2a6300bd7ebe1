"""``devd``: spin a step, run or resume a flow, from a terminal.

Kept light on purpose: heavy modules (metaflow, the engine) are imported only by
the command that needs them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_STEP_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _pairs(values: list[list[str]] | None) -> dict[str, str]:
    return {name: value for name, value in (values or [])}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="devd",
        description="The instant inner loop for Metaflow: spin one step on warm parents.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of devd errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    spin = sub.add_parser(
        "spin", help="re-run one step with its parents' recorded state",
        description="Re-run one step of FLOW with its parents' state. STEP is a step name "
        "(parents from the newest run that has them), RUN/STEP, or Flow/RUN/STEP/TASK.",
    )
    spin.add_argument("flow", metavar="FLOW", help="the flow's .py file")
    spin.add_argument("target", metavar="STEP_OR_PATHSPEC")
    spin.add_argument("--artifacts-module", metavar="FILE",
                      help="a .py file defining ARTIFACTS = {name: value} to override inputs")
    spin.add_argument("--persist", action="store_true",
                      help="store the spun task where Metaflow's inspect_spin('.') reads it")
    spin.add_argument("--config", nargs=2, action="append", metavar=("NAME", "PATH"),
                      help="a Config from a file (repeatable)")
    spin.add_argument("--config-value", nargs=2, action="append", metavar=("NAME", "JSON"),
                      help="a Config value as JSON (repeatable)")
    spin.add_argument("--json", action="store_true", help="print one JSON object")

    run = sub.add_parser(
        "run", help="run the flow with Metaflow (python FLOW run ...)",
        description="Run FLOW with Metaflow's own `run`; any further options go to Metaflow.",
    )
    run.add_argument("flow", metavar="FLOW")
    run.add_argument("args", nargs=argparse.REMAINDER, help="options for `python FLOW run`")

    resume = sub.add_parser(
        "resume", help="resume the flow with Metaflow (python FLOW resume ...)",
        description="Resume FLOW with Metaflow's own `resume`, from STEP if given.",
    )
    resume.add_argument("flow", metavar="FLOW")
    resume.add_argument("step", metavar="STEP", nargs="?")
    resume.add_argument("--origin-run-id", metavar="ID")
    resume.add_argument("args", nargs=argparse.REMAINDER,
                        help="options for `python FLOW resume`")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    from .errors import DevdError

    try:
        handler = {"spin": cmd_spin, "run": cmd_run, "resume": cmd_resume}[args.command]
        return handler(args)
    except DevdError as exc:
        if args.debug:
            raise
        print(f"devd: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def _config_values(pairs: dict[str, str]) -> dict[str, Any]:
    from .errors import DevdError

    values = {}
    for name, text in pairs.items():
        try:
            values[name] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DevdError(f"--config-value {name}: not valid JSON ({exc.msg})") from None
    return values


def cmd_spin(args: argparse.Namespace) -> int:
    from .session import Session

    stream = None if args.json else _echo
    with Session(args.flow) as session:
        result = session.spin(
            args.target,
            artifacts_module=args.artifacts_module,
            config=_pairs(args.config),
            config_value=_config_values(_pairs(args.config_value)),
            persist=args.persist,
            on_output=stream,
            want_values=False,
        )
    if args.json:
        print(json.dumps(result.to_json(), default=str))
    else:
        print_result(result)
    return EXIT_OK if result.ok else EXIT_STEP_FAILED


def _echo(stream: str, text: str) -> None:
    target = sys.stdout if stream == "stdout" else sys.stderr
    target.write(text)
    target.flush()


def print_result(result: Any) -> None:
    """The human report: artifacts table, timing, next steps, or the error line."""
    from .summary import human_bytes

    status = "ok" if result.ok else "FAILED"
    head = f"{result.flow}/{result.step}: {status} in {result.duration_s * 1000:.0f} ms"
    print(head + f"  (parents from run {result.origin_run_id})")
    for notice in result.notices:
        print(f"  note: {notice}")
    rows = result.artifact_rows
    if rows:
        name_w = max(len("artifact"), *(len(r["name"]) for r in rows))
        type_w = max(len("type"), *(len(r["type"]) for r in rows))
        print(f"  {'artifact'.ljust(name_w)}  {'type'.ljust(type_w)}  summary")
        for r in rows:
            size = human_bytes(r.get("sizeBytes"))
            summary = r["summary"] + (f"  [{size}]" if size else "")
            print(f"  {r['name'].ljust(name_w)}  {r['type'].ljust(type_w)}  {summary}")
    if result.persisted and result.pathspec:
        print(f"  persisted: {result.pathspec} (read it with inspect_spin('.'))")
    if result.ok:
        if result.next_steps:
            print(f"  next: {', '.join(result.next_steps)}")
    else:
        assert result.error is not None
        print(result.error.one_line(), file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from . import runner

    extra = [a for a in args.args if a != "--"]
    outcome = runner.run(args.flow, extra)
    return _report_run(outcome, "run")


def cmd_resume(args: argparse.Namespace) -> int:
    from . import runner

    extra = [a for a in args.args if a != "--"]
    outcome = runner.resume(args.flow, args.step, args.origin_run_id, extra)
    return _report_run(outcome, "resume")


def _report_run(outcome: Any, verb: str) -> int:
    if outcome.run_id:
        print(f"devd: {verb} {'finished' if outcome.ok else 'failed'}: run id {outcome.run_id}")
    elif not outcome.ok:
        print(f"devd: {verb} failed before a run started (exit {outcome.returncode})",
              file=sys.stderr)
    return outcome.returncode


if __name__ == "__main__":
    sys.exit(main())
