// bench/editor_bench.py's floor for `devd: Show Flow` (issue 20): a webview made as the flow
// view's is (beside the editor, focus kept, scripts on, its context kept when hidden) whose
// page only notes when it was on screen (the animation frame after its load event, when VS
// Code shows a new page; epoch ms, as the flow view's page notes drawnAt).
const vscode = require("vscode");

const PAGE = `<!DOCTYPE html><html><body data-bench-empty="1"><script>
addEventListener("load", () => requestAnimationFrame(() => {
  document.body.dataset.drawnAt = String(performance.timeOrigin + performance.now());
}));
</script></body></html>`;

exports.activate = (context) => {
  context.subscriptions.push(vscode.commands.registerCommand("devdBench.emptyView", () => {
    const panel = vscode.window.createWebviewPanel("devdBench.empty", "bench: empty view",
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
      { enableScripts: true, retainContextWhenHidden: true });
    panel.webview.html = PAGE;
  }));
};
