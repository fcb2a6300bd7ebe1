// Bundles the extension (dist/extension.js) and, with --tests, each unit test with a stub
// `vscode` module (out/test/*.test.js, run by node's test runner).
import { build } from "esbuild";
import { readdirSync } from "node:fs";

const production = process.argv.includes("--production");
const tests = process.argv.includes("--tests");

const common = { bundle: true, platform: "node", format: "cjs", target: "node18", logLevel: "warning" };

if (tests) {
  const entryPoints = readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`);
  await build({ ...common, entryPoints, outdir: "out/test", sourcemap: "inline", alias: { vscode: "./test/stubs/vscode.ts" } });
} else {
  await build({
    ...common,
    entryPoints: ["src/extension.ts"],
    outfile: "dist/extension.js",
    external: ["vscode"],
    minify: production,
    sourcemap: !production,
  });
}
