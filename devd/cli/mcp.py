"""``devd mcp``: devd's spins, runs, cards, artifacts and recorded runs as MCP tools.

A coding agent (Claude Code, Cursor, VS Code's agent mode...) starts this over stdio. Each
tool call goes to the project's daemon exactly as the CLI does (devd/cli/daemons.py), starting
it when none runs, so the agent's spins are warm and share state with the editor and the
terminal. Results are text an agent reads well: JSON for spins and artifacts, a plain-text
summary for cards (their headings, tables and values, not HTML); a failing step is a tool
error whose first line is ``file:line: Type: message``.
"""

import functools
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..common.errors import DevdError
from ..common.optiontable import spin_params, target_params
from .agent import add_agent_fields, shown_path
from .client import file_uri, refused
from .failures import error_line, run_failure, user_frames

if TYPE_CHECKING:
    from .client import Notification

MAX_OUTPUT = 4000  # characters of a step's or a run's output an answer keeps (the end)
MAX_CARD_CHARS = 8000  # characters of one card's text a `card` answer keeps
MAX_CARD_TEXT = 32_000  # characters of card text in all (a step may make many cards)
MAX_TASKS = 100  # tasks of one step a `tasks` answer lists (a foreach may have thousands)
INSTRUCTIONS = """\
devd re-executes ("spins") one step of a Metaflow flow on its parents' recorded artifacts
in tens of milliseconds. Develop a flow step by step: write a skeleton with empty @steps
and a data-loading start step, `run` it once, then for each step write it and `spin` it
(fix the file:line a failed spin names, spin again), `run` the flow when a step works to
record its outputs for the next one, and `run` the whole flow at the end. `artifacts` shows
a spun step's values, `card` its cards as text, `status` what the daemon keeps warm. For a
recorded run: `runs` and `graph` (each step's state), `tasks` (a run's tasks), and for one
task `task_artifacts` (its values) and `logs` (the end of its stdout and stderr)."""

_NEEDS_SDK = ("the MCP server needs the MCP Python SDK 2.x: install it with "
              "`pip install 'devd[mcp]'` (or `pip install 'mcp>=2,<3'`)")


def _sdk() -> Any:
    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError:
        raise DevdError(_NEEDS_SDK) from None
    return MCPServer


def _tail(text: str, limit: int = MAX_OUTPUT) -> str:
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    return f"[… {len(text) - limit} earlier characters left out]\n" + cut[cut.find("\n") + 1:]


class Tools:
    """The tools' work, without the SDK: each call is one request to the project daemon."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    # -- plumbing ---------------------------------------------------------------------
    def project_path(self, name: str) -> str:
        """``name`` (relative to the project, or absolute) as a path in the project, its
        symlinks and ``..`` resolved; DevdError, one line, for anything outside it: a tool
        call comes from an agent that may have read a prompt injection, and a flow or
        artifacts file anywhere else would be code run as the user."""
        from ..common.project import inside

        real_root = os.path.realpath(self.root)
        real = os.path.realpath(os.path.join(self.root, name))
        if not inside(real, real_root):
            raise DevdError(f"{name}: outside the project {self.root}; devd mcp serves only "
                            "files under it: pass a path relative to the project")
        return os.path.normpath(os.path.join(self.root, os.path.relpath(real, real_root)))

    def flow_path(self, flow: str) -> str:
        path = self.project_path(flow)
        if not os.path.isfile(path):
            raise DevdError(f"{flow}: no such file under {self.root}; pass the path of the "
                            "flow's .py file, relative to the project")
        return path

    def request(self, path: str, method: str, params: dict[str, Any],
                on_notification: "Notification | None" = None) -> Any:
        """One request to the daemon of ``path``'s project, starting the daemon if needed."""
        from .daemons import daemon_for

        client = daemon_for(path, "always")  # one thread starts it, the others wait
        if client is None:
            from ..common.project import daemon_paths, project_root

            paths = daemon_paths(project_root(path))
            raise DevdError(f"the daemon for {paths.root} did not answer; see {paths.log}")
        with client:
            return client.request(method, params, on_notification=on_notification)

    def shown(self, path: str) -> str:
        return shown_path(path, self.root)

    # -- tools ------------------------------------------------------------------------
    def spin(self, flow: str, step: str, artifacts: dict[str, Any] | None = None,
             config_value: dict[str, str] | None = None, from_spin: bool = False,
             environment: str | None = None) -> dict[str, Any]:
        path = self.flow_path(flow)
        params = spin_params(file_uri(path), step, {  # an empty override is no override
            "artifacts": artifacts or None, "config_value": config_value or None,
            "from_spin": from_spin, "environment": environment or None})
        data = self.request(path, "devd/spin", params)
        error = data.get("error") or {}
        if error.get("type") == "devd.BadRequest":
            raise DevdError(error.get("message") or "the spin did not start")
        data = add_agent_fields(data, self.shown(path), step, cwd=self.root, tools=True,
                                from_spin=from_spin)
        data["cards"] = [{k: v for k, v in card.items() if k != "html"}
                         for card in data.get("cards") or []]
        for stream in ("stdout", "stderr"):
            data[stream] = _tail(data.get(stream) or "")
        if data.get("error") and data["error"].get("traceback"):
            data["error"]["traceback"] = _tail(user_frames(data["error"]["traceback"]), 3000)
        data.pop("uri", None)
        return data

    def run(self, flow: str, args: list[str] | None = None,
            on_progress: Callable[[float, str | None], None] | None = None) -> dict[str, Any]:
        """A run through the daemon; ``on_progress(percent, message)`` per finished task."""
        path = self.flow_path(flow)
        output: list[str] = []

        def collect(method: str, params: Any) -> None:
            if method == "devd/log" and isinstance(params, dict):
                output.append(str(params.get("text", "")))
            elif method == "$/progress" and on_progress is not None and isinstance(params, dict):
                value = params.get("value") or {}
                if value.get("kind") == "report":
                    on_progress(float(value.get("percentage") or 0), value.get("message"))

        data = self.request(path, "devd/run", {"uri": file_uri(path), "args": list(args or []),
                                               "workDoneToken": "devd-mcp-run"},
                            on_notification=collect)
        text = "".join(output)
        if data.get("error"):  # the run could not start
            raise refused(data, "the run did not start")
        answer = {"ok": bool(data.get("ok")), "runId": data.get("runId"),
                  "returncode": data.get("returncode"), "output": _tail(text)}
        if not answer["ok"]:
            answer["failure"] = run_failure(text, path, self.root)
        return answer

    def artifacts(self, flow: str, step: str, name: str | None = None) -> dict[str, Any]:
        path = self.flow_path(flow)
        params: dict[str, Any] = {"uri": file_uri(path), "spinIfMissing": True,
                                  **target_params(step)}
        if name:
            params["name"] = name
        data = self.request(path, "devd/artifacts", params)
        if not data.get("ok"):
            raise refused(data, "no artifacts")
        return data

    def card(self, flow: str, step: str) -> str:
        from ..core.cardtext import card_text

        path = self.flow_path(flow)
        data = self.request(path, "devd/card", {
            "uri": file_uri(path), "spinIfMissing": True, **target_params(step)})
        if not data.get("ok"):
            raise refused(data, "no cards")
        spin = data.get("spin") or {}
        state = "ok" if spin.get("ok") else "FAILED"
        parts = [f"cards of the last spin of '{data.get('step')}' ({state}, parents from run "
                 f"{spin.get('originRunId')})"]
        error = spin.get("error")
        if error:
            parts.append(error_line(error, self.root))
        cards = data.get("cards") or []
        if not cards:
            parts.append("this step has no cards: add @card (and components through "
                         "current.card) to the step")
        room = MAX_CARD_TEXT
        for shown, card in enumerate(cards):
            if room <= 0:
                parts.append(f"[… {len(cards) - shown} more cards left out: an answer keeps "
                             f"{MAX_CARD_TEXT} characters of card text; see every card with "
                             f"`devd card {self.shown(path)} {step}`]")
                break
            label = " ".join(str(card[k]) for k in ("type", "id") if card.get(k))
            text = card_text(card.get("html") or "", min(MAX_CARD_CHARS, room)) or "(empty)"
            room -= len(text)
            parts.append(f"=== card {card.get('index')}: {label} ===\n{text}")
        return "\n\n".join(parts)

    def graph(self, flow: str, run_id: str | None = None) -> dict[str, Any]:
        """The flow's graph with its states (devd/graph), paths shown relative."""
        path = self.flow_path(flow)
        data: dict[str, Any] = self.request(path, "devd/graph", {
            "uri": file_uri(path), **({"runId": run_id} if run_id else {})})
        if not data.get("ok"):
            raise refused(data, "devd/graph failed")
        data["file"] = self.shown(path)
        return data

    def runs(self, flow: str, limit: int = 20) -> dict[str, Any]:
        path = self.flow_path(flow)
        data: dict[str, Any] = self.request(path, "devd/runs",
                                            {"uri": file_uri(path), "limit": limit})
        if not data.get("ok"):
            raise refused(data, "devd/runs failed")
        return data

    def tasks(self, flow: str, run_id: str, step: str | None = None) -> dict[str, Any]:
        """A run's tasks (devd/tasks): of ``step``, or of every step that ran, each step with
        its state; at most MAX_TASKS per step (a foreach may have thousands)."""
        path = self.flow_path(flow)
        if step:
            steps: list[dict[str, Any]] = [{"step": step}]
        else:
            nodes = self.graph(flow, run_id)["nodes"]
            steps = [{"step": n["step"], "state": n["state"]} for n in nodes if n.get("tasks")]
        for entry in steps:
            data = self.request(path, "devd/tasks", {"uri": file_uri(path), "runId": run_id,
                                                     "step": entry["step"]})
            if not data.get("ok"):
                raise refused(data, "devd/tasks failed")
            found = data.get("tasks") or []
            entry["tasks"] = found[:MAX_TASKS]
            if len(found) > MAX_TASKS:
                entry["moreTasks"] = len(found) - MAX_TASKS
        return {"runId": run_id, "steps": steps}

    def task_artifacts(self, flow: str, pathspec: str, name: str | None = None,
                       ) -> dict[str, Any]:
        """A recorded task's artifacts (devd/task), or with ``name`` that one's value as the
        daemon describes it (devd/artifactValue), an image's bytes left out."""
        path = self.flow_path(flow)
        if not name:
            data = self.request(path, "devd/task", {"uri": file_uri(path), "pathspec": pathspec})
            if not data.get("ok"):
                raise refused(data, "devd/task failed")
            return data
        data = self.request(path, "devd/artifactValue", {
            "uri": file_uri(path), "pathspec": pathspec, "name": name})
        if not data.get("ok"):
            raise refused(data, "devd/artifactValue failed")
        value = data.get("value") or {}
        if value.pop("data", None) is not None:
            value["data"] = "(the image's bytes are left out: see it in the editor's runs view)"
        return {"ok": True, "value": value}

    def logs(self, flow: str, pathspec: str, stream: str | None = None,
             tail: int = 200) -> dict[str, Any]:
        """The end of a recorded task's stdout and stderr (devd/taskLogs)."""
        path = self.flow_path(flow)
        params: dict[str, Any] = {"uri": file_uri(path), "pathspec": pathspec, "tail": tail}
        if stream:
            params["stream"] = stream
        data: dict[str, Any] = self.request(path, "devd/taskLogs", params)
        if not data.get("ok"):
            raise refused(data, "devd/taskLogs failed")
        return data

    def status(self, flow_or_dir: str = ".") -> dict[str, Any]:
        from ..common.project import daemon_paths, project_root
        from .client import connect

        target = self.project_path(flow_or_dir)
        paths = daemon_paths(project_root(target))
        client = connect(paths)
        if client is None:
            return {"daemonRunning": False, "root": paths.root,
                    "message": "no daemon runs for this project yet; the first spin, run, "
                               "card or artifacts call starts one"}
        with client:
            return {"daemonRunning": True, **client.request("devd/status")}


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str)


def build_server(root: str) -> Any:
    """The MCP server with devd's tools (``mcp`` SDK 2.x)."""
    mcp_server_cls = _sdk()
    import anyio.from_thread
    import anyio.to_thread
    from mcp.server.mcpserver import Context
    from mcp.types import CallToolResult, TextContent

    from .. import __version__

    tools = Tools(root)
    server = mcp_server_cls("devd", version=__version__, instructions=INSTRUCTIONS,
                            log_level="WARNING")

    # Failures are returned, not raised: the SDK would put "Error executing tool X: " before
    # the text, and the first line of a failure is the file:line an agent looks for.
    def answer(text: str, error: bool = False) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=error)

    def tool(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> CallToolResult:
            try:
                return fn(*args, **kwargs)
            except DevdError as exc:  # bad input, or the daemon could not be used
                return answer(f"devd: {exc}", error=True)

        return server.tool()(wrapper)

    @tool
    def spin(flow: str, step: str, artifacts: dict[str, Any] | None = None,
             config_value: dict[str, str] | None = None,
             from_spin: bool = False, environment: str | None = None) -> CallToolResult:
        """Re-execute ONE step of a Metaflow flow on its parents' recorded artifacts, warm,
        in milliseconds (no full run). `flow`: the flow's .py file, relative to the project;
        `step`: a step name (parents from the newest run), RUN/STEP or Flow/RUN/STEP/TASK.
        `artifacts` overrides parent artifacts ({name: value}); `config_value` gives a
        Config's value as text ({name: text}); `from_spin` takes the parents from the last
        spins of the parent steps instead of a run. `environment` is Metaflow's
        --environment (uv, pypi, conda; default: what the parents' run used): the step
        runs in that environment's interpreter, as in `python flow.py --environment=pypi
        spin`. Returns JSON: ok, artifacts (name, type,
        summary), stdout/stderr (their end), nextSteps, warnings (stale parents), next (what
        to do now) and nextCommand. A failing step is a tool error starting with
        file:line: Type: message, then the source line and the traceback."""
        data = tools.spin(flow, step, artifacts, config_value, from_spin, environment)
        if data.get("ok"):
            return answer(_dumps(data))
        error = data.get("error") or {}
        parts = [error_line(error, tools.root), f"next: {data.get('next')}"]
        if error.get("traceback"):
            parts.append(error["traceback"].rstrip())
        if data.get("stderr"):
            parts.append("stderr:\n" + data["stderr"].rstrip())
        if data.get("stdout"):
            parts.append("stdout:\n" + data["stdout"].rstrip())
        return answer("\n\n".join(parts), error=True)

    @server.tool()
    async def run(flow: str, args: list[str] | None = None,
                  ctx: Context | None = None) -> CallToolResult:
        """Run the whole flow with Metaflow's own `python FLOW run ARGS` (seconds to
        minutes); the new run's tasks become the parents of later spins. Run once before
        the first spin, after a step works (to record its outputs for the next step), and
        at the end. Reports progress per finished task. Returns JSON: ok, runId,
        returncode, output (its end). A failed run is a tool error starting with
        file:line: Type: message of the failing step."""

        def progress(percent: float, message: str | None) -> None:
            if ctx is not None:  # from the worker thread, on the server's event loop
                anyio.from_thread.run(ctx.report_progress, percent, 100.0, message)

        try:
            data = await anyio.to_thread.run_sync(
                functools.partial(tools.run, flow, args, progress))
        except DevdError as exc:
            return answer(f"devd: {exc}", error=True)
        if data["ok"]:
            return answer(_dumps(data))
        failure = data.get("failure")
        if failure:
            head = f"{failure['where']}: {failure.get('type', 'Error')}: "
            head += f"{failure.get('message', '')}"
            head += f"\n    {failure['source']}" if failure.get("source") else ""
        else:
            head = f"devd: the run failed (exit {data.get('returncode')})"
        hint = (f'next: fix it, then spin(flow="{flow}", step="{failure["step"]}")'
                if failure and failure.get("step") else "next: read the output below")
        return answer(f"{head}\n{hint}\n\nrun id {data.get('runId')}, exit "
                      f"{data.get('returncode')}; output:\n{data['output'].rstrip()}",
                      error=True)

    @tool
    def card(flow: str, step: str) -> CallToolResult:
        """The cards of the step's last spin (spinning it first if it was not spun yet) as
        plain text: headings, markdown, tables, values, images by label, not HTML."""
        return answer(tools.card(flow, step))

    @tool
    def artifacts(flow: str, step: str, name: str | None = None) -> CallToolResult:
        """The artifacts of the step's last spin (spinning it first if needed): name, type,
        summary (shape, length) and size of each; with `name`, also a bounded repr of that
        one value. Returns JSON."""
        return answer(_dumps(tools.artifacts(flow, step, name)))

    @tool
    def graph(flow: str, run_id: str | None = None) -> CallToolResult:
        """The flow's steps as a graph with each step's state in the newest run (or
        `run_id`): nodes (step, type, line, next, state ok/failed/running/not-run, tasks and
        tasksOk, durationS, stale: its code changed since that run, lastSpin), edges (a
        switch's case, a foreach's variable) and the run (id, status, duration, user, tags).
        Use it to see what the last run did and which steps to spin or run again. JSON."""
        return answer(_dumps(tools.graph(flow, run_id)))

    @tool
    def runs(flow: str, limit: int = 20) -> CallToolResult:
        """The flow's recent runs, newest first: runId, status (ok, failed, running),
        createdAt/finishedAt (epoch seconds), durationS, user, tags. JSON."""
        return answer(_dumps(tools.runs(flow, limit)))

    @tool
    def tasks(flow: str, run_id: str, step: str | None = None) -> CallToolResult:
        """A recorded run's tasks: of `step`, or of every step that ran (each with its state
        ok/failed/running), in split order: pathspec, taskId, state, index and input (a
        foreach split), durationS; at most 100 per step (`moreTasks` counts the rest). Pass a
        pathspec to `task_artifacts`, `logs` or `spin`. JSON."""
        return answer(_dumps(tools.tasks(flow, run_id, step)))

    @tool
    def task_artifacts(flow: str, pathspec: str, name: str | None = None) -> CallToolResult:
        """A recorded task's artifacts (`pathspec` Flow/RUN/STEP/TASK, from `tasks`): name,
        type, summary and size of each (values stored over 1 MB named, not loaded); with
        `name`, that value described by kind: a DataFrame's shape, dtypes and head, an
        array's shape, dtype and min/max/mean, JSON or text (bounded), else a bounded repr.
        JSON."""
        return answer(_dumps(tools.task_artifacts(flow, pathspec, name)))

    @tool
    def logs(flow: str, pathspec: str, stream: str | None = None,
             tail: int = 200) -> CallToolResult:
        """The end of a recorded task's output (`pathspec` Flow/RUN/STEP/TASK, from `tasks`):
        the last `tail` lines (default 200, at most 10,000; at most 64,000 characters) of
        stdout and stderr, or only `stream` ("stdout" or "stderr"), with each stream's line
        count and how many lines were left out. Use it to see why a task of a run failed.
        JSON."""
        return answer(_dumps(tools.logs(flow, pathspec, stream, tail)))

    @tool
    def status(flow_or_dir: str = ".") -> CallToolResult:
        """What the project's devd daemon holds: warm parent tasks and their memory, running
        spins and runs, watched flows, last spins. Returns JSON."""
        return answer(_dumps(tools.status(flow_or_dir)))

    return server


def main(root: str = ".") -> int:
    """Serve MCP on stdin/stdout until the client closes it."""
    server = build_server(root)
    server.run("stdio")
    return 0
