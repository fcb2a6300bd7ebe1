import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { newestSpinOf } from "../src/commands/daemon";
import { CrashPolicy, onClientClosed } from "../src/server/crashPolicy";

describe("a closed connection (issue 19, item 1)", () => {
  it("a client stopped on purpose is never revived: Restart Daemon leaves one client", () => {
    const policy = new CrashPolicy(1);
    assert.equal(onClientClosed({ current: true, stopping: true }, policy), "ignore");
    assert.equal(onClientClosed({ current: false, stopping: false }, policy), "ignore");
    // nor did those closes use up the one restart a real crash gets
    assert.equal(onClientClosed({ current: true, stopping: false }, policy), "restart");
  });
  it("the current client closing on its own is restarted once, then given up on", () => {
    const policy = new CrashPolicy(1);
    assert.equal(onClientClosed({ current: true, stopping: false }, policy), "restart");
    assert.equal(onClientClosed({ current: true, stopping: false }, policy), "giveUp");
  });
});

describe("the newest spin (issue 19, item 7)", () => {
  const spin = (flow: string, step: string) => ({ flow, step, ok: true, durationMs: 1 });
  it("is the flow's last entry in the daemon's order, whatever the steps' names", () => {
    const spins = [spin("/p/a.py", "train"), spin("/p/b.py", "end"), spin("/p/a.py", "end"), spin("/p/b.py", "start")];
    assert.equal(newestSpinOf(spins, "/p/a.py")?.step, "end");
    assert.equal(newestSpinOf(spins, "/p/b.py")?.step, "start");
    assert.equal(newestSpinOf(spins, "/p/c.py"), undefined);
  });
});

describe("Choose Interpreter… (issue 19)", () => {
  it("the current interpreter first, then the Python extension's, the workspace venvs, python3; each once", async () => {
    const { interpreterCandidates } = await import("../src/python/candidates");
    const list = interpreterCandidates({ path: "/ws/.venv/bin/python", source: "setting" }, ["/usr/bin/python3.12", "/ws/.venv/bin/python"], ["/ws/.venv/bin/python", "/ws/sub/venv/bin/python"]);
    assert.deepEqual(
      list.map((c) => [c.path, c.source, c.current]),
      [
        ["/ws/.venv/bin/python", "setting", true],
        ["/usr/bin/python3.12", "Python extension", false],
        ["/ws/sub/venv/bin/python", "workspace venv", false],
        ["python3", "default", false],
      ],
    );
  });
  it("finds venvs (a dir with pyvenv.cfg) in the folder and one level down", async () => {
    const fs = await import("node:fs");
    const os = await import("node:os");
    const path = await import("node:path");
    const { venvsIn } = await import("../src/python/candidates");
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "devd-venvs-"));
    for (const dir of [".venv", "proj/venv", "notavenv"]) {
      fs.mkdirSync(path.join(root, dir, "bin"), { recursive: true });
      fs.writeFileSync(path.join(root, dir, "bin", "python"), "");
      if (dir !== "notavenv") {
        fs.writeFileSync(path.join(root, dir, "pyvenv.cfg"), "home = /usr/bin\n");
      }
    }
    assert.deepEqual(venvsIn(root).sort(), [path.join(root, ".venv/bin/python"), path.join(root, "proj/venv/bin/python")].sort());
  });
});

describe("the devd output channel (issue 19)", () => {
  it("one line per line: no blank lines, the language client's own timestamp gone, its level kept", async () => {
    const { logLines } = await import("../src/server/logLines");
    assert.deepEqual(logLines("[Error - 2:59:48 AM] Server process exited with code 0.\n\n"), [
      { level: "error", message: "Server process exited with code 0." },
    ]);
    assert.deepEqual(logLines("[Warn  - 10:01:02 PM] slow\r\nstep output\n  \nmore"), [
      { level: "warn", message: "slow" },
      { level: "info", message: "step output" },
      { level: "info", message: "more" },
    ]);
    // the JSON-RPC trace (devd.trace.server is its filter) is not hidden again by the log level
    assert.deepEqual(logLines("[Trace - 1:02:03 AM] Sending request 'devd/spin - (3)'."), [{ level: "info", message: "Sending request 'devd/spin - (3)'." }]);
  });
  it("a header per spin", async () => {
    const { spinHeader } = await import("../src/server/logLines");
    assert.equal(spinHeader("train", "ok", 120.4), "spin train ok 120 ms");
    assert.equal(spinHeader("train", "failed", 7, "ValueError"), "spin train failed (ValueError) 7 ms");
    assert.equal(spinHeader("train", "cancelled", 7), "spin train cancelled");
  });
  it("a header per run", async () => {
    const { runHeader } = await import("../src/server/logLines");
    assert.equal(runHeader("run", "flow.py", "ok", "4/4 steps", "17"), "run 4/4 steps ok (flow.py, run 17)");
    assert.equal(runHeader("resume", "flow.py", "cancelled", "", null), "resume cancelled (flow.py)");
  });
});
