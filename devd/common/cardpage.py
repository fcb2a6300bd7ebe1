"""The page a card is shown in: the live bridge and the WebRTC guard injected into every card
document, Metaflow's card assets read once, the live update's payload. The card itself is
rendered in the spin's child (devd/common/cardrender.py).
"""

from __future__ import annotations

import os
import re
from typing import Any

# Injected into every card document: the preview forwards live updates with postMessage
# (a sandboxed card cannot be reached otherwise) and the card applies them itself.
LIVE_BRIDGE = """<script data-devd="live-bridge">
(function () {
  window.addEventListener("message", function (event) {
    var msg = event.data || {};
    if (msg.type === "devd/cardUpdated" && msg.components && window.metaflow_card_update) {
      window.metaflow_card_update(msg.components);
      var seen = Number(document.body.dataset.devdUpdates || 0);
      document.body.dataset.devdUpdates = String(seen + 1);
    } else if (msg.type === "devd/cardData" && event.source === window.parent) {
      window.parent.postMessage({type: "devd/cardSwapped", seq: msg.seq, ok: swap(msg)}, "*");
    }
  });
  // The next spin's data for this same card page, taken in place: Metaflow's card app (the
  // renderer's export) is unmounted and a new one mounted on the new data, as a fresh load
  // of the document would do, without parsing and running the renderer again. Not updated
  // in place: some of its components render their content once, at mount.
  function swap(msg) {
    var app = window["Outerbounds Cards"];
    var App = app && app.constructor;
    var data = window.__MF_DATA__;
    var target = document.querySelector(".card_app");
    if (typeof App !== "function" || typeof app.$destroy !== "function" || !data || !target ||
        typeof msg.id !== "string" || typeof msg.data !== "string") { return false; }
    try {
      JSON.parse(atob(msg.data));  // the renderer would swallow bad data: refuse it here
    } catch (e) {
      return false;
    }
    var old = window.mfCardDataId;
    data[msg.id] = msg.data;
    window.mfCardDataId = msg.id;
    try {
      app.$destroy();
      target.textContent = "";
      window["Outerbounds Cards"] = new App({target: target, props: {cardDataId: msg.id}});
    } catch (e) {
      return false;  // the page loads the document instead
    }
    if (old !== msg.id) { delete data[old]; }
    if (typeof msg.title === "string") { document.title = msg.title; }
    var shown = function () {
      document.body.dataset.devdShownAt = String(performance.timeOrigin + performance.now());
    };
    if (window.requestAnimationFrame) { window.requestAnimationFrame(shown); } else { shown(); }
    return true;
  }
  if (window.parent === window) { return; }  // a card opened on its own: nothing to size
  // Ready for data in place, told after the frame's load event reached the page.
  window.addEventListener("load", function () {
    setTimeout(function () { window.parent.postMessage({type: "devd/cardReady"}, "*"); }, 0);
  });
  // The preview sizes this frame to the card's content. Metaflow's layout is at least one
  // viewport tall (min-height: 100vh); left so, every resize would grow it again.
  var style = document.createElement("style");
  style.textContent = "html, body, .card_app, .card_app > .container " +
                      "{ min-height: 0 !important; height: auto !important; }";
  document.head.appendChild(style);
  var last = 0;
  function report() {
    var height = Math.ceil(document.body.scrollHeight);
    if (Math.abs(height - last) > 2) {
      last = height;
      window.parent.postMessage({type: "devd/cardHeight", height: height}, "*");
    }
  }
  window.addEventListener("load", report);
  if (window.ResizeObserver) { new ResizeObserver(report).observe(document.body); }
})();
</script>"""


# Put first in every card document, before the card's own scripts. WebRTC opens network
# paths (STUN/TURN over UDP) that no Content-Security-Policy stops in Chromium (156 knows
# no `webrtc` directive, in a <meta> policy or an iframe's `csp`), so the card's window
# loses WebRTC's constructors, and nothing may make a window that still has them:
# - its policy forbids nested frames and workers (`frame-src 'none'` stops all but srcdoc
#   frames) and, through Trusted Types, every string that would make a srcdoc frame or a
#   declarative shadow root (the srcdoc property and attribute, innerHTML, document.write,
#   DOMParser, setHTMLUnsafe...) goes through the one default policy, created here first,
#   which empties a srcdoc and renames "srcdoc" and "shadowroot..." in HTML "data-devd-...";
# - a frame put in the DOM any other way (the card's own markup, a clone) is removed before
#   its document loads (a srcdoc navigation takes a task; mutation observers run at the
#   next microtask), in every shadow root the card can reach; one it cannot reach (a closed
#   shadow root of the markup) has its loading stopped;
# - everything the guard calls later was taken when it started: a card that replaces
#   Element.prototype.remove, MutationRecord's getters or String.prototype.indexOf changes
#   nothing the guard uses.
# Frames' windows are sealed when reached (contentWindow) and on load, where the origin
# allows (a sandboxed card's frames have origins of their own).
NO_WEBRTC = """<meta http-equiv="Content-Security-Policy" content="frame-src 'none'; \
child-src 'none'; worker-src 'none'; require-trusted-types-for 'script'; \
trusted-types default"><script data-devd="no-webrtc">
(function () {
  "use strict";
  var uncurry = function (fn) { return Function.prototype.call.bind(fn); };
  var describe = Object.getOwnPropertyDescriptor;
  var define = Object.defineProperty;
  var getter = function (proto, name) {
    var d = proto && describe(proto, name);
    return d && d.get ? uncurry(d.get) : null;
  };
  var names = ["RTCPeerConnection", "webkitRTCPeerConnection", "RTCDataChannel",
               "RTCIceTransport", "RTCDtlsTransport", "RTCSctpTransport", "RTCRtpSender",
               "RTCRtpReceiver", "RTCRtpTransceiver", "RTCSessionDescription",
               "RTCIceCandidate", "RTCCertificate", "RTCTrackEvent", "RTCError"];
  function seal(win) {
    for (var i = 0; i < names.length; i++) {
      try {
        define(win, names[i], {value: undefined, writable: false, configurable: false,
                               enumerable: false});
      } catch (e) { /* already sealed */ }
    }
  }
  seal(window);
  var lower = uncurry(String.prototype.toLowerCase);
  var indexOf = uncurry(String.prototype.indexOf);
  var slice = uncurry(String.prototype.slice);
  // HTML from a string with every "srcdoc" and "shadowroot..." renamed "data-devd-...":
  // no srcdoc frame, no declarative shadow root; the card's script goes on. A string whose
  // lower case has another length (positions would not match) is refused.
  function defuse(html) {
    var text = "" + html;
    var low = lower(text);
    if (low.length !== text.length) { return null; }
    var out = "";
    var from = 0;
    for (;;) {
      var a = indexOf(low, "srcdoc", from);
      var b = indexOf(low, "shadowroot", from);
      var at = a < 0 ? b : b < 0 ? a : a < b ? a : b;
      if (at < 0) { return out + slice(text, from); }
      out += slice(text, from, at) + "data-devd-" + slice(text, at, at + 1);
      from = at + 1;
    }
  }
  if (window.trustedTypes && window.trustedTypes.createPolicy) {
    try {
      window.trustedTypes.createPolicy("default", {
        createHTML: function (html, type, sink) {
          return sink === "HTMLIFrameElement srcdoc" ? "" : defuse(html);
        },
        createScript: function (text) { return text; },
        createScriptURL: function (url) { return url; }
      });
    } catch (e) { /* a policy exists: the card's document was guarded already */ }
  }
  var Observer = window.MutationObserver;
  var observe = uncurry(Observer.prototype.observe);
  var remove = uncurry(Element.prototype.remove);
  var removeAttribute = uncurry(Element.prototype.removeAttribute);
  var inDocument = uncurry(Document.prototype.querySelectorAll);
  var inFragment = uncurry(DocumentFragment.prototype.querySelectorAll);
  var count = getter(NodeList.prototype, "length");
  var item = uncurry(NodeList.prototype.item);
  var frameCount = getter(window, "length") || getter(Window.prototype, "length");
  var stop = uncurry(window.stop);
  var roots = [document];
  var watch = {childList: true, subtree: true, attributes: true,
               attributeFilter: ["srcdoc"]};
  function sweep() {
    for (var r = 0; r < roots.length; r++) {
      var found = roots[r] === document ? inDocument(document, "iframe, frame")
                                        : inFragment(roots[r], "iframe, frame");
      for (var i = count(found) - 1; i >= 0; i--) {
        var frame = item(found, i);
        try { removeAttribute(frame, "srcdoc"); } catch (e) { /* gone already */ }
        try { remove(frame); } catch (e) { /* gone already */ }
      }
    }
    if (frameCount(window) > 0) { stop(window); }  // a frame out of reach: stop its load
  }
  function watchRoot(root) {
    for (var r = 0; r < roots.length; r++) { if (roots[r] === root) { return; } }
    roots[roots.length] = root;
    observe(new Observer(sweep), root, watch);
    sweep();
  }
  observe(new Observer(sweep), document, watch);
  var attach = Element.prototype.attachShadow;
  if (attach) {
    var attachShadow = uncurry(attach);
    define(Element.prototype, "attachShadow", {configurable: false, writable: false,
      value: function attachShadow_(init) {
        var root = attachShadow(this, init);
        watchRoot(root);
        return root;
      }});
  }
  // Shadow roots the markup declared: watched once a script reaches them.
  [[Element.prototype, "shadowRoot"],
   [window.ElementInternals && window.ElementInternals.prototype, "shadowRoot"]]
    .forEach(function (pair) {
      var get = getter(pair[0], pair[1]);
      if (!get) { return; }
      define(pair[0], pair[1], {configurable: false, get: function () {
        var root = get(this);
        if (root) { watchRoot(root); }
        return root;
      }});
    });
  // A nested same-origin frame's window is sealed when reached, and when it loads.
  [window.HTMLIFrameElement, window.HTMLFrameElement, window.HTMLObjectElement]
    .forEach(function (kind) {
      var get = kind && getter(kind.prototype, "contentWindow");
      if (!get) { return; }
      define(kind.prototype, "contentWindow", {configurable: false, get: function () {
        var w = get(this);
        if (w) { try { seal(w); } catch (e) { /* another origin */ } }
        return w;
      }});
    });
  window.addEventListener("load", function () {
    for (var i = 0; i < frameCount(window); i++) {
      try { seal(window[i]); } catch (e) { /* another origin */ }
    }
  }, true);
})();
</script>"""


def _head_end(html: str) -> int:
    """Where a card's first script may go: after ``<head ...>`` in the document's first
    kilobytes, else after the doctype, else the start (the doctype must stay first)."""
    import re as _re

    start = html[:8192]
    head = _re.search(r"<head(\s[^>]*)?>", start, _re.IGNORECASE)
    if head:
        return head.end()
    doctype = _re.match(r"\s*<!doctype[^>]*>", start, _re.IGNORECASE)
    return doctype.end() if doctype else 0


# Metaflow's card CSS begins with an @import of a web font, the one remote fetch of a card
# document (text falls back to the system font without it): dropped so cards work offline.
_REMOTE_FONT = re.compile(r'@import\s*(?:url\()?\s*"https://fonts\.googleapis\.com/[^"]*"\s*\)?\s*;?')


# A declarative shadow root (<template shadowrootmode=...>) in a card's markup: a closed one
# hides what is in it from every script, the WebRTC guard's included (a srcdoc frame there
# would load unseen). The attribute is renamed, so the template stays an inert template.
_DECLARATIVE_SHADOW = re.compile(r"(<template\b[^>]*?[\s/])(shadowroot)", re.IGNORECASE)


def with_live_bridge(html: str) -> str:
    """Add the listener that applies live updates, and the WebRTC guard first; idempotent."""
    html = _REMOTE_FONT.sub("", html, count=1)
    html = _DECLARATIVE_SHADOW.sub(r"\1data-devd-\2", html)
    if 'data-devd="no-webrtc"' not in html[:16384]:
        at = _head_end(html)
        html = html[:at] + NO_WEBRTC + html[at:]
    if 'data-devd="live-bridge"' in html:
        return html
    end = _last_body_close(html)  # the last one: the card's script may contain it
    if end < 0:
        return html + LIVE_BRIDGE
    return html[:end] + LIVE_BRIDGE + html[end:]


def _last_body_close(html: str) -> int:
    """Where the last ``</body>`` (any case) starts; the tail first (cards run to MBs)."""
    tail_start = max(0, len(html) - 4096)
    found = html[tail_start:].lower().rfind("</body>")
    if found >= 0:
        return tail_start + found
    return html.lower().rfind("</body>") if tail_start else -1


def cache_card_assets() -> None:
    """Read Metaflow's card page template, JS and CSS (~1 MB) once, in the warm process.

    Metaflow's default and blank cards read them from its package at every render; a
    spin's child would read them again each time. Only files inside Metaflow's card
    package are cached: they never change while a process runs.
    """
    from metaflow.plugins.cards.card_modules import basic

    if getattr(basic.read_file, "devd_cached", False):
        return
    package = os.path.dirname(os.path.abspath(basic.__file__)) + os.sep
    original = basic.read_file
    cache: dict[str, str] = {}

    def read_file(path: str) -> str:
        if not os.path.abspath(path).startswith(package):
            return original(path)
        if path not in cache:
            cache[path] = original(path)
        return cache[path]

    read_file.devd_cached = True  # type: ignore[attr-defined]
    basic.read_file = read_file
    for name in ("RENDER_TEMPLATE_PATH", "JS_PATH", "CSS_PATH"):
        path = getattr(basic, name, None)
        if isinstance(path, str) and os.path.isfile(path):
            read_file(path)


def update_payload(entry: dict[str, Any]) -> dict[str, Any]:
    """The ``card`` of a ``devd/cardUpdated`` notification, from a live card event.

    ``components`` maps component ids to their new rendered form (what Metaflow's card
    page applies with ``metaflow_card_update``); ``html`` is set instead when the card's
    layout changed (components added or removed) and the whole card was re-rendered.
    """
    data = entry.get("data") or {}
    payload: dict[str, Any] = {
        "uuid": entry.get("uuid"),
        "id": entry.get("id"),
        "type": entry.get("type"),
        "mode": entry.get("mode"),
        "renderSeq": data.get("render_seq"),
        "user": data.get("user") or {},
        "components": data.get("components") or {},
    }
    if entry.get("html"):
        payload["html"] = entry["html"]
    return payload
