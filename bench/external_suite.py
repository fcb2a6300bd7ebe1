"""Reproduce flows written by Metaflow's authors with devd, side by side with Metaflow's spin.

Each flow is run for real with Metaflow (local datastore and metadata, in its own temporary
project directory, ``USER=devd-test``); then every recorded task that finished is spun by
its pathspec with ``devd.Session`` and, once per step, by step name; a sample of the same
tasks is spun with Metaflow's own ``spin`` (``Runner.spin(pathspec, persist=True)``) for
comparison. A spin *reproduces* a task when it succeeds and its public artifacts equal the
recorded task's (see ``same``). The flows are not part of devd: get them from Metaflow's
repository (bench/README.md says how) and point this script at them::

    python bench/external_suite.py --flows /tmp/mfsuite/src/test/unit/spin/flows \\
        --flows /tmp/mfsuite/src/test/ux/core/flows --core /tmp/mfsuite/src/test/core

``--core`` is Metaflow's ``test/core`` directory: its own generator (``metaflow_test``)
writes the graph x test flows, run with the options of its ``python3-all-local`` context.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Metaflow's core tests that exercise graph shapes and features a spin must reproduce
# (cards, logs, resume, scheduler and S3 tests test other machinery).
CORE_TESTS = [
    "BasicArtifactTest", "BasicConfigTest", "BasicForeachTest", "BasicIncludeTest",
    "BasicParameterTest", "BasicTagTest", "BasicUnboundedForeachTest", "BranchInSwitchTest",
    "CardDecoratorBasicTest", "CatchRetryTest", "ConstantsTest", "CurrentSingletonTest",
    "DynamicParameterTest", "ExtensionsTest", "FlowOptionsTest", "ForeachInSwitchTest",
    "LineageTest", "MergeArtifactsIncludeTest", "MergeArtifactsPropagationTest",
    "MergeArtifactsTest", "MultipleCardDecoratorTest", "NestedForeachTest",
    "NestedSwitchTest", "ParameterNameTest", "ProjectBranchTest",
    "RecursiveSwitchFlowTest", "RecursiveSwitchInsideForeachFlowTest", "BasicSwitchTest",
    "SwitchInBranchTest", "SwitchInForeachTest", "TagCatchTest", "TaskExceptionTest",
    "WideForeachTest",
]


# What @catch records when the step's process died (a signal, os._exit) on every attempt.
KILLED = "FailureHandledByCatch"


@dataclass
class Case:
    """One flow to run and reproduce, in its own project directory."""

    name: str
    source: str  # the group it is reported under
    flow_file: str  # inside project
    project: str
    top_options: list[str] = field(default_factory=list)
    run_options: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    runner_options: dict[str, object] = field(default_factory=dict)


# -- comparing artifacts -----------------------------------------------------------------


def same(recorded: object, spun: object) -> bool:
    """Equal as values: ``==`` where it gives a bool (numpy/pandas: all elements), else
    the pickles (objects without their own ``__eq__`` compare by identity, so they are
    compared by their pickled state)."""
    if type(recorded).__eq__ is object.__eq__ and recorded is not spun:
        return _pickled(recorded) == _pickled(spun) and type(recorded) is type(spun)
    try:
        equal = recorded == spun
        if isinstance(equal, bool):
            return equal
        all_of = getattr(equal, "all", None)
        if callable(all_of):
            result = all_of()
            result = result.all() if callable(getattr(result, "all", None)) else result
            return bool(result)
        return bool(equal)
    except Exception:
        return _pickled(recorded) == _pickled(spun)


def _pickled(value: object) -> bytes | str:
    try:
        return pickle.dumps(value)
    except Exception:
        return f"{type(value).__qualname__}:{value!r}"


def differences(recorded: dict, spun: dict) -> list[str]:
    """Names of artifacts that are missing, extra, or not ``same``."""
    names = sorted(set(recorded) | set(spun))
    return [n for n in names if n not in recorded or n not in spun
            or not same(recorded[n], spun[n])]


def first_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "")[:200]


# -- building the cases ------------------------------------------------------------------

FLOW_CLASS = re.compile(r"^class\s+(\w*Flow\w*\(|\w+\(.*FlowSpec)", re.M)


def flow_cases(root: Path, work: Path) -> list[Case]:
    """Every flow file under ``root`` (a ``__main__`` block and a class that subclasses
    FlowSpec or is named ...Flow..., for flows built on a base flow); its project is a copy
    of the folder it lives in."""
    parts = root.parts
    source = "/".join(parts[parts.index("test"):]) if "test" in parts else root.name
    cases = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(errors="replace")
        if "__main__" not in text or not FLOW_CLASS.search(text):
            continue
        name = "/".join((source, *path.relative_to(root).with_suffix("").parts))
        project = work / re.sub(r"[^\w.-]", "_", name)
        shutil.copytree(path.parent, project, ignore=shutil.ignore_patterns(
            "__pycache__", ".metaflow*"), dirs_exist_ok=True)
        cases.append(Case(name, source, path.name, str(project)))
    return cases


def core_cases(core: Path, work: Path, tests: list[str] | None, rounds: int,
               graphs: list[str] | None) -> list[Case]:
    """Metaflow's generator's graph x test flows: every graph, each chosen test on
    ``rounds`` graphs (spread so that every graph is used about equally)."""
    sys.path[:0] = [str(core), str(core / "tests")]
    import importlib

    from metaflow_test import MetaflowTest
    from metaflow_test.formatter import FlowFormatter

    context = next(c for c in json.loads((core / "contexts.json").read_text())["contexts"]
                   if c["name"] == "python3-all-local")
    disabled = set(context.get("disabled_tests", []))
    all_graphs = []
    for graph_file in sorted((core / "graphs").glob("*.json")):
        graph = json.loads(graph_file.read_text())
        if graphs and graph["name"].lower() not in graphs:
            continue
        if any("num_parallel" in node for node in graph["graph"].values()):
            continue  # @parallel needs a multi-node backend
        all_graphs.append(graph)
    found = {}
    for test_file in sorted((core / "tests").glob("*.py")):
        module = importlib.import_module(test_file.stem)
        for attr in dir(module):
            obj = getattr(module, attr)
            if isinstance(obj, type) and issubclass(obj, MetaflowTest) \
                    and obj is not MetaflowTest:
                found[obj.__name__] = obj
    chosen = [t for t in (tests or CORE_TESTS) if t in found and t not in disabled]
    uses = {g["name"]: 0 for g in all_graphs}
    cases = []
    for test_name in chosen:
        valid = []
        for graph in all_graphs:
            formatter = FlowFormatter(graph, found[test_name]())
            if formatter.valid:
                valid.append((graph, formatter))
        valid.sort(key=lambda gf: (uses[gf[0]["name"]], gf[0]["name"]))
        for graph, formatter in valid[:rounds]:
            uses[graph["name"]] += 1
            name = f"core/{graph['name']}/{test_name}"
            project = work / name.replace("/", "_")
            project.mkdir(parents=True)
            (project / "test_flow.py").write_text(formatter.flow_code)
            for extra in formatter.copy_files:
                shutil.copy2(core / "tests" / extra, project / extra)
            env = dict(context["env"])
            env.pop("METAFLOW_DEFAULT_DATASTORE", None)
            env["PYTHONPATH"] = f"{core}:{os.environ.get('PYTHONPATH', '.')}"
            run_options = [o for o in context["run_options"]
                           if not o.startswith("--max-workers")] + ["--max-workers=4"]
            cases.append(Case(name, "test/core", "test_flow.py", str(project),
                              list(context["top_options"]), run_options, env,
                              {"metadata": "local", "datastore": "local",
                               "environment": "local", "event_logger": "nullSidecarLogger",
                               "pylint": False, "quiet": True}))
    return cases


# -- one case, in a worker process -------------------------------------------------------


def base_env(case: Case) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("METAFLOW_", "DEVD_")) or k == "METAFLOW_CLIENT_CACHE_PATH"}
    env.update({"USER": "devd-test", "METAFLOW_DEFAULT_DATASTORE": "local",
                "METAFLOW_DEFAULT_METADATA": "local",
                "METAFLOW_CLIENT_CACHE_PATH": str(Path(case.project) / ".client-cache"),
                "DEVD_RUNTIME_DIR": str(Path(case.project) / ".devd-runtime")})
    env.update(case.env)
    return env


def run_case(case: Case, mf_sample: int, timeout: float) -> dict:
    """Run the case's worker (``--worker``) in a fresh interpreter and read its report."""
    report = Path(case.project) / ".suite-report.json"
    started = time.perf_counter()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker",
           json.dumps(asdict(case)), "--mf-sample", str(mf_sample), "--report", str(report)]
    try:
        proc = subprocess.run(cmd, env=base_env(case), cwd=case.project, capture_output=True,
                              text=True, timeout=timeout)
        failure = None if proc.returncode == 0 else first_line(proc.stderr)
    except subprocess.TimeoutExpired:
        failure = f"worker timed out after {timeout:.0f} s"
    data = json.loads(report.read_text()) if report.exists() else {}
    data.setdefault("devd", [])
    data.setdefault("devd_by_name", [])
    data.setdefault("mf", [])
    data.setdefault("tasks", 0)
    data["name"], data["source"] = case.name, case.source
    data["worker_error"] = failure
    data["seconds"] = round(time.perf_counter() - started, 1)
    return data


def worker(case: Case, mf_sample: int, report_path: Path) -> None:
    """Run the flow, then spin its tasks with devd and (a sample) with Metaflow."""
    report: dict = {"devd": [], "devd_by_name": [], "mf": [], "tasks": 0}

    def save() -> None:
        report_path.write_text(json.dumps(report, default=str))

    project = Path(case.project)
    os.chdir(project)
    run_id_file = project / ".run-id"
    cmd = [sys.executable, case.flow_file, *case.top_options, "run", *case.run_options,
           "--run-id-file", str(run_id_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    report["run_ok"] = proc.returncode == 0
    report["run_error"] = None if proc.returncode == 0 else first_line(proc.stderr)
    save()
    flows = [d.name for d in (project / ".metaflow").iterdir()
             if (d / "latest_run").exists()] if (project / ".metaflow").is_dir() else []
    if not run_id_file.exists() or len(flows) != 1:
        report["run_error"] = report["run_error"] or "no run recorded"
        save()
        return

    from metaflow import Flow, namespace

    namespace(None)
    run = Flow(flows[0])[run_id_file.read_text().strip()]
    tasks = [t for s in run if s.id != "_parameters" for t in s]
    finished = [t for t in tasks if t.finished]
    report["tasks"], report["unfinished"] = len(finished), len(tasks) - len(finished)
    recorded = {t.pathspec: {a.id: a.data for a in t if not a.id.startswith("_")}
                for t in finished}
    # A task whose exception @catch handled finished (the run went on) but raised: a
    # spin reproduces it when it raises the same exception type.
    raised = {p: next((v.type.rsplit(".", 1)[-1] for v in arts.values()
                       if type(v).__name__ == "MetaflowExceptionWrapper"), None)
              for p, arts in recorded.items()}
    raised = {p: kind for p, kind in raised.items() if kind and not _successful(p)}
    # A spin by step name is a new task's first attempt: where the recorded task is a
    # retry, the run's own first attempt failed, and so should that spin.
    retried = {t.pathspec for t in finished if int(t.current_attempt) > 0}
    # An artifact holding the task's own identity (current.task_id, run_id, pathspec) is a
    # new task's in any spin: not comparable.
    identity = {t.pathspec: {t.id, t.path_components[1], t.pathspec} for t in finished}

    def own_identity(pathspec: str, names: list[str]) -> list[str]:
        values = recorded[pathspec]
        return [n for n in names if isinstance(values.get(n), str)
                and values[n] in identity[pathspec]]
    save()

    import devd

    report["devd_path"] = os.path.dirname(devd.__file__)
    def check(target: str, result: object, expected: str | None) -> dict:
        row: dict = {"target": target, "task": expected, "ok": False, "error": None}
        if not result.ok:
            err = result.error
            row["error"] = f"{err.type}: {first_line(err.message)}" if err else "failed"
            if err and expected in raised and (
                    err.type.rsplit(".", 1)[-1] == raised[expected]
                    or (err.type == "devd.ChildCrashed" and raised[expected] == KILLED)):
                row["ok"], row["error"] = True, None  # raised (or died) as the task did
            elif target != expected and expected in retried:
                row["ok"], row["error"] = True, None  # as the run's first attempt did
        elif expected in recorded:
            diff = differences(recorded[expected], dict(result.artifacts))
            skipped = own_identity(expected, diff)
            if skipped:
                row["skipped"] = skipped
                diff = [n for n in diff if n not in skipped]
            row["ok"] = not diff
            if diff:
                row["error"] = "artifacts differ: " + ", ".join(diff[:6])
        else:
            row["ok"] = expected is None  # nothing recorded to compare with
        return row

    report["nondeterministic"] = {}

    def check_twice(session: object, target: str, result: object, expected: str) -> dict:
        """A mismatch is spun again: artifacts that differ between two spins of the same
        task (random numbers, clocks, task ids) are not comparable and left out."""
        row = check(target, result, expected)
        if row["ok"] or not result.ok or expected not in recorded:
            return row
        again = session.spin(target)
        if not again.ok:
            return row
        varying = [n for n in result.artifacts
                   if n in again.artifacts and not same(result.artifacts[n], again.artifacts[n])]
        if varying:
            report["nondeterministic"][expected] = varying
            diff = [n for n in differences(recorded[expected], dict(result.artifacts))
                    if n not in varying and n not in row.get("skipped", ())]
            row["ok"] = not diff
            row["error"] = "artifacts differ: " + ", ".join(diff[:6]) if diff else None
            row["skipped"] = sorted(set(varying) | set(row.get("skipped", ())))
        return row

    with devd.Session(case.flow_file, cwd=str(project)) as session:
        for task in finished:
            try:
                result = session.spin(task.pathspec)
                report["devd"].append(check_twice(session, task.pathspec, result,
                                                  task.pathspec))
            except Exception as exc:  # a DevdError: devd refused the task
                report["devd"].append({"target": task.pathspec, "task": task.pathspec,
                                       "ok": False,
                                       "error": f"{type(exc).__name__}: {first_line(str(exc))}"})
            save()
        for step in sorted({t.path_components[2] for t in finished}):
            try:
                result = session.spin(step)
                report["devd_by_name"].append(
                    check_twice(session, step, result, result.recorded_task))
            except Exception as exc:
                report["devd_by_name"].append({"target": step, "task": None, "ok": False,
                                               "error": f"{type(exc).__name__}: "
                                                        f"{first_line(str(exc))}"})
            save()

    from metaflow import Runner

    sample = finished if mf_sample < 0 else _spread(finished, mf_sample)
    for task in sample:
        row: dict = {"target": task.pathspec, "task": task.pathspec, "ok": False,
                     "error": None}
        try:
            with Runner(case.flow_file, cwd=str(project), show_output=False,
                        **case.runner_options).spin(task.pathspec, persist=True) as spun:
                if spun.status != "successful":
                    row["error"] = first_line(spun.stderr)
                    kind = raised.get(task.pathspec)
                    if kind and (f"{kind}:" in spun.stderr or (
                            kind == KILLED and "failed with return code -" in spun.stderr)):
                        row["ok"], row["error"] = True, None
                else:
                    got = {a.id: a.data for a in spun.task if not a.id.startswith("_")}
                    diff = differences(recorded[task.pathspec], got)
                    skip = set(report["nondeterministic"].get(task.pathspec, ())) | set(
                        own_identity(task.pathspec, diff))
                    diff = [n for n in diff if n not in skip]
                    row["ok"] = not diff
                    row["error"] = "artifacts differ: " + ", ".join(diff[:6]) if diff else None
        except Exception as exc:  # Runner raises when the spin's process failed
            row["error"] = f"{type(exc).__name__}: {first_line(str(exc))}"
            kind = raised.get(task.pathspec)
            if kind == KILLED and "failed with return code -" in str(exc):
                row["ok"], row["error"] = True, None  # died as every attempt in the run did
        report["mf"].append(row)
        namespace(None)
        save()


def _successful(pathspec: str) -> bool:
    from metaflow import Task

    return bool(Task(pathspec, _namespace_check=False).successful)


def _spread(tasks: list, count: int) -> list:
    """Up to ``count`` tasks, one per step first (last step first: joins and ends)."""
    by_step: dict[str, list] = {}
    for task in tasks:
        by_step.setdefault(task.path_components[2], []).append(task)
    picked: list = []
    while len(picked) < min(count, len(tasks)):
        for step_tasks in reversed(list(by_step.values())):
            if step_tasks and len(picked) < count:
                picked.append(step_tasks.pop(len(step_tasks) // 2))
    return picked


# -- the table -----------------------------------------------------------------------------


def table(results: list[dict]) -> str:
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["source"], []).append(r)
    groups["total"] = results
    head = ("| flows | runs failed | tasks | devd by pathspec ok / failed | devd by step name "
            "ok / failed | Metaflow spin ok / failed (sample) | devd ok on that sample |")
    lines = [f"| source {head}", "|---" * 8 + "|"]
    for source, rows in groups.items():
        devd = [x for r in rows for x in r["devd"]]
        by_name = [x for r in rows for x in r["devd_by_name"]]
        mf = [x for r in rows for x in r["mf"]]
        devd_ok = {x["target"] for x in devd if x["ok"]}
        lines.append(
            f"| {source} | {len(rows)} | {sum(1 for r in rows if not r.get('run_ok'))} "
            f"| {sum(r['tasks'] for r in rows)} "
            f"| {sum(x['ok'] for x in devd)} / {sum(not x['ok'] for x in devd)} "
            f"| {sum(x['ok'] for x in by_name)} / {sum(not x['ok'] for x in by_name)} "
            f"| {sum(x['ok'] for x in mf)} / {sum(not x['ok'] for x in mf)} "
            f"| {sum(x['target'] in devd_ok for x in mf)} / {len(mf)} |")
    return "\n".join(lines)


def failures(results: list[dict]) -> str:
    out = []
    for r in results:
        mf = {x["target"]: x for x in r["mf"]}
        if r.get("worker_error"):
            out.append(f"- {r['name']}: worker: {r['worker_error']}")
        for kind in ("devd", "devd_by_name"):
            for x in r[kind]:
                if not x["ok"]:
                    other = mf.get(x["target"])
                    shared = "" if other is None else (
                        " [Metaflow's spin fails too]" if not other["ok"]
                        else " [Metaflow's spin reproduces it]")
                    how = "" if kind == "devd" else " (by step name)"
                    out.append(f"- {x['target']}{how}: {x['error']}{shared}")
        for x in r["mf"]:
            if not x["ok"]:
                out.append(f"- Metaflow spin {x['target']}: {x['error']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", action="append", default=[], type=Path,
                        help="a directory of Metaflow flows (searched recursively)")
    parser.add_argument("--core", type=Path,
                        help="Metaflow's test/core directory: generate graph x test flows")
    parser.add_argument("--tests", help="comma-separated core test classes (default: a "
                        "sample of graph and feature tests), or 'all'")
    parser.add_argument("--graphs", help="comma-separated core graph names (default: all)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="graphs each core test is generated on (default 2)")
    parser.add_argument("--only", help="regular expression on case names")
    parser.add_argument("--limit", type=int, help="at most this many flows")
    parser.add_argument("--jobs", type=int, default=1, choices=(1, 2))
    parser.add_argument("--mf-sample", type=int, default=2,
                        help="tasks per flow spun with Metaflow's spin too (-1: all)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per flow")
    parser.add_argument("--work", type=Path, help="project directories go here (kept)")
    parser.add_argument("--json", type=Path, help="write every result row here")
    parser.add_argument("--markdown", type=Path, help="write the table and failures here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        worker(Case(**json.loads(args.worker)), args.mf_sample, args.report)
        return 0
    if not args.flows and not args.core:
        parser.error("give --flows DIR and/or --core DIR (see bench/README.md)")
    os.environ["USER"] = "devd-test"
    work = args.work or Path(tempfile.mkdtemp(prefix="devd-suite-"))
    work.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    for root in args.flows:
        cases += flow_cases(root.resolve(), work)
    if args.core:
        tests = None if not args.tests else (
            _every_test(args.core) if args.tests == "all" else args.tests.split(","))
        cases += core_cases(args.core.resolve(), work, tests, args.rounds,
                            None if not args.graphs else args.graphs.lower().split(","))
    if args.only:
        cases = [c for c in cases if re.search(args.only, c.name)]
    if args.limit:
        cases = cases[:args.limit]
    print(f"{len(cases)} flows; projects in {work}", flush=True)
    results = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_case, c, args.mf_sample, args.timeout): c for c in cases}
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            results.append(r)
            bad = sum(not x["ok"] for x in r["devd"])
            print(f"[{len(results)}/{len(cases)}] {r['name']}: {r['tasks']} tasks, "
                  f"devd failed {bad}, run {'ok' if r.get('run_ok') else 'failed'} "
                  f"({r['seconds']} s)", flush=True)
    results.sort(key=lambda r: r["name"])
    text = table(results) + "\n\nFailures:\n" + (failures(results) or "none")
    print("\n" + text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _every_test(core: Path) -> list[str]:
    names = []
    for path in sorted((core / "tests").glob("*.py")):
        names += re.findall(r"^class (\w+)\(MetaflowTest\)", path.read_text(), re.M)
    return names


if __name__ == "__main__":
    sys.exit(main())
