import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it, mock } from "node:test";

import { readSettings, serverEnv, spinTopLevel } from "../src/config/settings";
import { makeNonce, paneAction, paneColumn, parsePageMessage } from "../src/panel/policy";
import type { SpinOutcome } from "../src/protocol";
import { resolveInterpreter } from "../src/python/interpreter";
import { CrashPolicy } from "../src/server/crashPolicy";
import { debounce } from "../src/server/debounce";
import { definesFlow, projectRoot } from "../src/server/project";
import { formatStatus, humanBytes } from "../src/statusbar/format";

describe("interpreter order", () => {
  it("the setting wins over the Python extension", async () => {
    let asked = false;
    const found = await resolveInterpreter({
      setting: "/opt/py/bin/python",
      pythonExtension: async () => {
        asked = true;
        return "/env/bin/python";
      },
    });
    assert.deepEqual(found, { path: "/opt/py/bin/python", source: "setting" });
    assert.equal(asked, false);
  });
  it("then the Python extension's active environment", async () => {
    const found = await resolveInterpreter({ setting: "", pythonExtension: async () => "/env/bin/python" });
    assert.deepEqual(found, { path: "/env/bin/python", source: "python extension" });
  });
  it("then python3, also when the Python extension is absent or throws", async () => {
    assert.deepEqual(await resolveInterpreter({ setting: "", pythonExtension: async () => undefined }), {
      path: "python3",
      source: "default",
    });
    const broken = await resolveInterpreter({
      setting: "",
      pythonExtension: async () => {
        throw new Error("not activated");
      },
    });
    assert.equal(broken.path, "python3");
  });
  it("expands ~ in the setting", async () => {
    const found = await resolveInterpreter({ setting: "~/venv/bin/python", pythonExtension: async () => undefined });
    assert.equal(found.path, `${process.env.HOME}/venv/bin/python`);
  });
});

describe("settings", () => {
  it("defaults", () => {
    assert.deepEqual(
      readSettings(() => undefined),
      { pythonPath: "", spinOnSave: false, memoryBudgetMB: 0, runArgs: [], previewOpenOn: "firstSpin" },
    );
  });
  it("typed values, bad ones fall back", () => {
    const values: Record<string, unknown> = {
      pythonPath: " /x/python ",
      spinOnSave: true,
      memoryBudgetMB: 512,
      runArgs: ["--with", "kubernetes", 3],
      "preview.openOn": "sometimes",
    };
    const s = readSettings((k) => values[k]);
    assert.equal(s.pythonPath, "/x/python");
    assert.equal(s.spinOnSave, true);
    assert.equal(s.memoryBudgetMB, 512);
    assert.deepEqual(s.runArgs, ["--with", "kubernetes"]);
    assert.equal(s.previewOpenOn, "firstSpin");
    assert.equal(readSettings((k) => (k === "memoryBudgetMB" ? -3 : undefined)).memoryBudgetMB, 0);
  });
  it("the budget reaches the daemon through DEVD_BUDGET_MB", () => {
    const s = readSettings((k) => (k === "memoryBudgetMB" ? 2048 : undefined));
    assert.equal(serverEnv(s, { PATH: "/bin" }).DEVD_BUDGET_MB, "2048");
    assert.equal(serverEnv(readSettings(() => undefined), { PATH: "/bin" }).DEVD_BUDGET_MB, undefined);
  });
  it("spins take runArgs' top-level options, either spelling (issue 24)", () => {
    assert.deepEqual(spinTopLevel(["--environment=pypi", "--max-workers", "4", "--with", "timeout:seconds=9",
      "--metadata", "local", "--with=card"]),
    { environment: "pypi", decospecs: ["timeout:seconds=9", "card"], metadata: "local" });
    assert.deepEqual(spinTopLevel([]), {});
    assert.deepEqual(spinTopLevel(["--environment"]), {});
  });
});

describe("project root (as devd/core/project.py)", () => {
  const tree = (present: string[]) => (p: string) => present.includes(p);
  it("nearest .metaflow wins over a git root above it", () => {
    assert.equal(projectRoot("/w/repo/flows/a/flow.py", tree(["/w/repo/.git", "/w/repo/flows/.metaflow"])), "/w/repo/flows");
  });
  it("else the git root", () => {
    assert.equal(projectRoot("/w/repo/flows/a/flow.py", tree(["/w/repo/.git"])), "/w/repo");
  });
  it("else the flow's folder", () => {
    assert.equal(projectRoot("/w/repo/flows/a/flow.py", tree([])), "/w/repo/flows/a");
  });
  it("a .metaflow above a git root still counts", () => {
    assert.equal(projectRoot("/w/repo/x/flow.py", tree(["/w/.metaflow", "/w/repo/.git"])), "/w");
  });
});

describe("flow detection", () => {
  it("lights up for FlowSpec subclasses and for flows on a project base class", () => {
    assert.ok(definesFlow("from metaflow import FlowSpec, step\nclass A(FlowSpec):\n    pass\n"));
    assert.ok(definesFlow("from metaflow import step\nfrom base import Base\nclass A(Base):\n    @step\n    def start(self): ...\n"));
    assert.ok(!definesFlow("import os\nprint('hello')\n"));
    assert.ok(!definesFlow("@step\ndef f(): pass\n"));
  });
});

describe("restart debounce", () => {
  it("a burst of changes restarts once, after the last", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      let restarts = 0;
      const restart = debounce(() => (restarts += 1), 500);
      restart();
      mock.timers.tick(300);
      restart();
      mock.timers.tick(300);
      restart();
      assert.equal(restarts, 0);
      mock.timers.tick(499);
      assert.equal(restarts, 0);
      mock.timers.tick(1);
      assert.equal(restarts, 1);
      restart();
      restart.cancel();
      mock.timers.tick(1000);
      assert.equal(restarts, 1);
    } finally {
      mock.timers.reset();
    }
  });
});

describe("crash policy", () => {
  it("restarts once, then gives up until a deliberate restart", () => {
    const policy = new CrashPolicy(1);
    assert.equal(policy.shouldRestart(), true);
    assert.equal(policy.shouldRestart(), false);
    assert.equal(policy.shouldRestart(), false);
    policy.reset();
    assert.equal(policy.shouldRestart(), true);
  });
});

function result(over: Partial<SpinOutcome> = {}): SpinOutcome {
  return { ok: true, uri: "file:///p/flow.py", flow: "F", step: "train", pathspec: null, persisted: false, durationMs: 20, artifacts: [], stdout: "", stderr: "", error: null, nextSteps: [], parents: [], originRunId: null, notices: [], timingsMs: {}, cards: [], recordedTask: null, ...over };
}

describe("pane policy", () => {
  it("the pane and the flow view show side by side, never one column (issue 20)", () => {
    assert.equal(paneColumn(undefined, undefined, 1), "beside"); // no flow view: beside the editor
    assert.equal(paneColumn(2, undefined, 1), 3); // a new pane: right of the flow view
    assert.equal(paneColumn(2, 2, 1), 3); // the flow view opened over the pane: it moves
    assert.equal(paneColumn(2, 3, 1), 3); // already beside it: stays
    assert.equal(paneColumn(3, 2, 1), 2); // left of the flow view: stays
    assert.equal(paneColumn(2, 1, 1), 3); // not over the editor either
    assert.equal(paneColumn(9, 9, 1), 9); // no column past the ninth
    assert.equal(paneColumn(1, undefined, 2), "beside"); // the editor right of the view: beside it
  });
  it("firstSpin opens once, then only updates an open pane", () => {
    assert.equal(paneAction(result(), "firstSpin", false, false), "open");
    assert.equal(paneAction(result(), "firstSpin", true, true), "update");
    assert.equal(paneAction(result(), "firstSpin", false, true), "ignore"); // closed by the user
  });
  it("everySpin reveals, never only updates an open pane", () => {
    assert.equal(paneAction(result(), "everySpin", false, true), "open");
    assert.equal(paneAction(result(), "everySpin", true, true), "reveal");
    assert.equal(paneAction(result(), "never", false, false), "ignore");
    assert.equal(paneAction(result(), "never", true, true), "update");
  });
  it("a failed spin is shown; superseded and bad requests are not", () => {
    const failed = result({ ok: false, error: { type: "ZeroDivisionError", message: "division by zero", file: "/p/flow.py", line: 9 } });
    assert.equal(paneAction(failed, "firstSpin", true, true), "update");
    const cancelled = result({ ok: false, error: { type: "devd.Cancelled", message: "superseded" } });
    assert.equal(paneAction(cancelled, "everySpin", true, true), "ignore");
    const bad = result({ ok: false, step: null, error: { type: "devd.BadRequest", message: "line 3 is not inside a step" } });
    assert.equal(paneAction(bad, "everySpin", false, false), "ignore");
  });
});

describe("page messages", () => {
  it("openFile with a 1-based line; anything else is ignored", () => {
    assert.deepEqual(parsePageMessage({ type: "devd/openFile", file: "/p/flow.py", line: 12 }), { type: "openFile", file: "/p/flow.py", line: 12 });
    assert.deepEqual(parsePageMessage({ type: "devd/openFile", file: "/p/flow.py", line: "x" }), { type: "openFile", file: "/p/flow.py", line: 1 });
    assert.deepEqual(parsePageMessage({ type: "devd/openFile", file: "" }), { type: "unknown" });
    assert.deepEqual(parsePageMessage({ type: "devd/ready" }), { type: "ready" });
    assert.deepEqual(parsePageMessage("devd/openFile"), { type: "unknown" });
    assert.deepEqual(parsePageMessage(null), { type: "unknown" });
  });
  it("nonces are long and CSP-safe", () => {
    const nonce = makeNonce(randomBytes);
    assert.match(nonce, /^[A-Za-z0-9]{16,24}$/);
    assert.notEqual(makeNonce(randomBytes), nonce);
  });
});

describe("status bar text", () => {
  it("sizes", () => {
    assert.equal(humanBytes(0), "0 B");
    assert.equal(humanBytes(1536), "1.5 KB");
    assert.equal(humanBytes(200 * 1024 * 1024), "200 MB");
  });
  it("last spin, memory, staleness and failure", () => {
    const worker = formatStatus({ daemon: "ready", workers: [{ environment: "@venv_step", python: "/p/venv/bin/python", pid: 42, warmBytes: 3072 }] });
    assert.match(worker.tooltip, /worker: @venv_step in \/p\/venv\/bin\/python \(pid 42, 3\.0 KB warm\)/);
    const ok = formatStatus({ daemon: "ready", lastSpin: { step: "train", ok: true, durationMs: 24.4 }, warmBytes: 2048, budgetBytes: 1024 ** 3 });
    assert.equal(ok.text, "$(check) devd: train 24 ms"); // short: memory is in the tooltip (issue 19)
    assert.match(ok.tooltip, /warm parents: 2\.0 KB of a 1\.0 GB budget/);
    assert.equal(ok.severity, "normal");
    const stale = formatStatus({ daemon: "ready", lastSpin: { step: "train", ok: true, durationMs: 5 }, stale: ["code of step 'start' changed"] });
    assert.equal(stale.severity, "warning");
    assert.match(stale.text, /^\$\(warning\) devd: train 5 ms · stale$/);
    assert.match(stale.tooltip, /code of step 'start' changed/);
    const failed = formatStatus({ daemon: "ready", lastSpin: { step: "join", ok: false, durationMs: 7 } });
    assert.equal(failed.text, "$(error) devd: join failed");
    const dead = formatStatus({ daemon: "failed", message: "the devd daemon stopped again after a restart" });
    assert.equal(dead.severity, "error");
    assert.match(dead.text, /daemon stopped/);
  });
});
