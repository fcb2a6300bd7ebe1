// @ts-check
// devd preview: forwards live card updates into the sandboxed card frames, in place; takes
// a whole new preview from its host in place too; talks to VS Code when inside a webview.
// Type-checked (`tsc --checkJs`, make lint) against the messages the pane declares once for
// both sides: vscode-extension/src/panel/pageMessages.ts.
/** @typedef {import("../vscode-extension/src/panel/pageMessages").ToPage} ToPage */
/** @typedef {import("../vscode-extension/src/panel/pageMessages").FromPage} FromPage */
/** @typedef {import("../vscode-extension/src/panel/pageMessages").ToFrame} ToFrame */
/** @typedef {import("../vscode-extension/src/panel/pageMessages").FromFrame} FromFrame */
/** @typedef {import("../vscode-extension/src/panel/pageMessages").LiveCard} LiveCard */
/** @typedef {import("../vscode-extension/src/panel/pageMessages").PageState} PageState */
/** @typedef {import("../vscode-extension/src/panel/pageMessages").WebviewApi} WebviewApi */
/** @typedef {import("../vscode-extension/src/panel/pageMessages").PaneButton} PaneButton */
/** @typedef { {id: string, data: string, title: string | null, shell: string} } CardData */
/**
 * A card's frame and what the page keeps on it: the document it shows, that document's card
 * data, whether a new document is loading (messages wait in the queue), the card's bridge
 * is ready, and the number of the last data swap asked of it.
 * @typedef {HTMLIFrameElement & {devdHtml?: string, devdCard?: CardData | null,
 *   devdLoading?: boolean, devdReady?: boolean, devdQueue?: ToFrame[], devdSwap?: number}} CardFrame
 */
/**
 * A card box of a page, matched with a box of the page before (`match`).
 * @typedef { {box: Element, frame: CardFrame, uuid: string, id: string, type: string,
 *   html?: string, match?: PageCard} } PageCard
 */
/**
 * @typedef {Window & typeof globalThis & {acquireVsCodeApi?: () => WebviewApi,
 *   devdApplyCardUpdate?: (card: LiveCard | undefined) => void,
 *   devdApplyPreview?: (html: unknown) => void,
 *   devdTopOnNew?: (sameStep: boolean, failed: boolean) => boolean}} PageWindow
 */
(function () {
  "use strict";
  var page = /** @type {PageWindow} */ (window);
  // The page's own nonce (a VS Code webview page, else ""). Card frames inherit the page's
  // Content-Security-Policy, so every card document loaded here must carry it too.
  var nonce = (document.currentScript && document.currentScript.nonce) || "";
  /** @type {WebviewApi | null} */
  var vscode = null;
  if (typeof page.acquireVsCodeApi === "function") {
    try { vscode = page.acquireVsCodeApi(); } catch (e) { vscode = null; }  // once only
  }
  /** @param {string} name */
  var count = function (name) {
    document.body.dataset[name] = String(Number(document.body.dataset[name] || 0) + 1);
  };
  // `nonce="..."` on every <script> start tag of a card document (not inside script bodies
  // or comments), instead of any nonce the tag had: Chromium honours no nonce on an element
  // with a duplicate attribute. As devd.core.preview.with_nonce does; idempotent.
  var PIECE = /(\s+)|([^\s\/>"'=][^\s\/>"'=]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?|\//y;
  /** @param {string} html @param {number} pos @returns { {text: string, end: number} } */
  var attributesOf = function (html, pos) {  // the tag's attributes but nonce; where '>' is
    var kept = "";
    var space = "";
    while (pos < html.length && html[pos] !== ">") {
      PIECE.lastIndex = pos;
      var piece = PIECE.exec(html);
      if (!piece || !piece[0]) { kept += space + html[pos]; space = ""; pos += 1; continue; }
      if (piece[1] !== undefined) { space += piece[0]; }
      else if (piece[2] !== undefined && piece[2].toLowerCase() === "nonce") { space = ""; }
      else { kept += space + piece[0]; space = ""; }
      pos = PIECE.lastIndex;
    }
    return { text: kept + space, end: pos };
  };
  /** @param {string} html @returns {string} */
  var withNonce = function (html) {
    if (!nonce || !html) { return html; }
    var mine = ' nonce="' + nonce + '"';
    var open = /<script(?=[\s\/>])|<!--/gi;
    var close = /<\/script(?=[\s\/>])/gi;
    var out = [];
    var pos = 0;
    var m;
    for (;;) {
      open.lastIndex = pos;
      m = open.exec(html);
      if (!m) { break; }
      var at = open.lastIndex;
      if (m[0] === "<!--") {
        var shut = html.indexOf("-->", at);
        var after = shut < 0 ? html.length : shut + 3;
        out.push(html.slice(pos, after));
        pos = after;
        continue;
      }
      var attrs = attributesOf(html, at);
      out.push(html.slice(pos, at) + mine + attrs.text);
      close.lastIndex = attrs.end + 1;
      var end = close.exec(html) ? close.lastIndex : html.length;
      out.push(html.slice(attrs.end, end));
      pos = end;
    }
    out.push(html.slice(pos));
    return out.join("");
  };
  /** @returns {CardFrame[]} */
  var frames = function () { return Array.prototype.slice.call(document.querySelectorAll("iframe.card")); };
  /** @param {ParentNode} root @returns {Element[]} */
  var boxes = function (root) {
    return Array.prototype.slice.call(root.querySelectorAll(".card-frame")).filter(function (b) {
      return b.querySelector("iframe.card");
    });
  };
  // The frame showing `card`: same uuid (same spin), else same @card id, else the only
  // frame of that type. Card uuids change with every spin; ids and types do not.
  /** @param {LiveCard} card @returns {CardFrame | null} */
  var frameFor = function (card) {
    var all = frames();
    /** @param {(f: CardFrame) => boolean} test */
    var pick = function (test) { return all.filter(test); };
    var found = card.uuid ? pick(function (f) { return f.dataset.uuid === card.uuid; }) : [];
    if (!found.length && card.id) { found = pick(function (f) { return f.dataset.cardId === card.id; }); }
    if (!found.length && !card.id) {
      var typed = pick(function (f) { return !f.dataset.cardId && f.dataset.cardType === card.type; });
      if (typed.length === 1) { found = typed; }
    }
    return found[0] || null;
  };
  // A card the page does not show yet (a new @card, or a page opened before any spin).
  /** @param {LiveCard} card @returns {CardFrame} */
  var newFrame = function (card) {
    var box = document.createElement("div");
    box.className = "card-frame";
    var title = document.createElement("h2");
    title.className = "card-title";
    title.textContent = (card.type || "card") + " card" + (card.id ? " " + card.id : "");
    var frame = document.createElement("iframe");
    frame.className = "card";
    frame.setAttribute("sandbox", "allow-scripts");
    frame.title = title.textContent;
    frame.dataset.uuid = card.uuid || "";
    frame.dataset.cardId = card.id || "";
    frame.dataset.cardType = card.type || "";
    box.appendChild(title);
    box.appendChild(frame);
    var empty = document.querySelector("#cards .empty");
    if (empty) { empty.remove(); }
    /** @type {HTMLElement} */ (document.getElementById("cards")).appendChild(box);
    return frame;
  };
  // Messages for a frame whose new document is still loading wait for it: posted earlier,
  // they would reach the document being replaced and be lost.
  /** @param {CardFrame} frame @param {ToFrame} message */
  var send = function (frame, message) {
    if (frame.devdLoading) { /** @type {ToFrame[]} */ (frame.devdQueue).push(message); return; }
    if (frame.contentWindow) { frame.contentWindow.postMessage(message, "*"); }
  };
  // Big card scripts (Metaflow's card renderer, ~1 MB) are sent to an editor pane once: a
  // later card carries a `data-devd-asset="HASH"` script tag with no body, and gets it
  // back here from the copy this page keeps (devd/core/preview.py, CardAssets).
  /** @type {Record<string, string>} */
  var assets = {};
  var ASSET = /<script\b[^>]*\bdata-devd-asset="([0-9a-f]+)"[^>]*>/gi;
  /** @param {string} html @returns {string} */
  var withAssets = function (html) {
    if (!html || html.indexOf("data-devd-asset") < 0) { return html; }
    var out = [];
    var pos = 0;
    var tag;
    ASSET.lastIndex = 0;
    while ((tag = ASSET.exec(html)) !== null) {
      var bodyStart = tag.index + tag[0].length;
      var bodyEnd = html.indexOf("<\/script", bodyStart);  // "<\/": this file is inline
      if (bodyEnd < 0) { break; }
      if (bodyEnd > bodyStart) {
        assets[tag[1]] = html.slice(bodyStart, bodyEnd);  // learnt: later cards may omit it
      } else if (assets[tag[1]] !== undefined) {
        out.push(html.slice(pos, bodyStart), assets[tag[1]]);
        pos = bodyStart;
      }
      ASSET.lastIndex = bodyEnd;
    }
    out.push(html.slice(pos));
    return out.join("");
  };
  // Metaflow's card page differs from the next spin's only in the card's data, its data id
  // and its title: a frame showing one takes the next in place (`devd/cardData`, applied by
  // the card's live bridge, devd/common/cards.py) instead of parsing and running its ~1 MB
  // renderer again. Any other change, or a frame that cannot, loads the new document.
  var DATA = /window\.__MF_DATA__\["([^"\\]+)"\]\s*=\s*"([^"\\]*)"/;
  var TITLE = /<title>([^<]*)<\/title>/i;
  /** @param {string} html @returns {CardData | null} */
  var cardData = function (html) {
    var d = html ? DATA.exec(html) : null;
    if (!d) { return null; }
    var shell = (html.slice(0, d.index) + html.slice(d.index + d[0].length)).split(d[1]).join("");
    var title = TITLE.exec(shell);
    return { id: d[1], data: d[2], title: title ? title[1] : null,
             shell: title ? shell.replace(TITLE, "<title></title>") : shell };
  };
  /** @param {string} html */
  var textOf = function (html) {  // a title's text, its character references decoded
    return new DOMParser().parseFromString("<title>" + html + "</title>", "text/html").title;
  };
  // What each frame shows (`devdHtml`: its document, or the data swapped in since) and its
  // card data; load() keeps both.
  frames().forEach(function (f) {
    f.devdHtml = withAssets(f.getAttribute("srcdoc") || "");
    f.devdCard = cardData(f.devdHtml);
  });
  /** @param {CardFrame} frame @param {string} full */
  var reload = function (frame, full) {
    frame.devdQueue = frame.devdQueue || [];
    frame.devdLoading = true;
    frame.devdReady = false;
    frame.onload = function () {
      frame.devdLoading = false;
      var queued = /** @type {ToFrame[]} */ (frame.devdQueue).splice(0);
      queued.forEach(function (message) { send(frame, message); });
    };
    frame.srcdoc = full;  // the frame keeps its height meanwhile
  };
  /** @param {CardFrame} frame @param {string} html */
  var load = function (frame, html) {
    var full = withAssets(withNonce(html));
    var next = cardData(full);
    var before = frame.devdCard;
    frame.devdHtml = full;
    frame.devdCard = next;
    frame.devdSwap = (frame.devdSwap || 0) + 1;
    if (frame.devdReady && !frame.devdLoading && before && next && before.shell === next.shell) {
      /** @type {ToFrame} */
      var swap = { type: "devd/cardData", seq: frame.devdSwap, id: next.id,
        data: next.data, title: next.title === null ? null : textOf(next.title) };
      /** @type {Window} */ (frame.contentWindow).postMessage(swap, "*");
      count("cardSwaps");
      return;
    }
    reload(frame, full);
  };
  // Cards kept from the spin before a failed one: greyed, labelled, never looking current.
  var PREVIOUS = "card from the previous spin \u2014 this spin failed";
  /** @param {Element} box */
  var markPrevious = function (box) {
    box.classList.add("previous");
    if (!box.querySelector(".previous-label")) {
      var label = document.createElement("p");
      label.className = "previous-label";
      label.textContent = PREVIOUS;
      box.insertBefore(label, box.querySelector("iframe.card"));
    }
  };
  /** @param {Element | null} box */
  var unmarkPrevious = function (box) {
    if (!box) { return; }
    box.classList.remove("previous");
    var label = box.querySelector(".previous-label");
    if (label) { label.remove(); }
  };
  /** @param {LiveCard | undefined} card */
  function apply(card) {
    if (!card) { return; }
    var frame = frameFor(card);
    if (card.html) {
      if (!frame) { frame = newFrame(card); }
      frame.dataset.uuid = card.uuid || frame.dataset.uuid;
      load(frame, card.html);
      unmarkPrevious(frame.closest(".card-frame"));  // the running spin's own card now
    } else if (frame) {
      send(frame, { type: "devd/cardUpdated", components: card.components || {} });
    } else {
      return;  // data for a card this page has not seen rendered: nothing to patch
    }
    count("liveUpdates");
  }

  // --- A whole new preview (the next spin), applied in place ------------------------------
  // What the user needs first, first: status, error, artifacts with their diff, output; then cards.
  var SECTIONS = ["head", "stale", "notices", "error", "artifacts", "output", "cards"];
  /** @param {Element} box @returns {PageCard} */
  var cardOf = function (box) {
    var f = /** @type {CardFrame} */ (box.querySelector("iframe.card"));
    return { box: box, frame: f, uuid: f.dataset.uuid || "", id: f.dataset.cardId || "",
             type: f.dataset.cardType || "" };
  };
  // The same card: same uuid, else the same @card id, else (cards without an id) the same
  // type at the same position among the cards of that type.
  /** @param {PageCard[]} olds @param {PageCard[]} news @returns {PageCard[]} the olds unmatched */
  var matchCards = function (olds, news) {
    /** @type {number[]} */
    var used = [];
    /** @param {PageCard} card @param {(o: PageCard) => boolean} test */
    var take = function (card, test) {
      if (card.match) { return; }
      for (var i = 0; i < olds.length; i++) {
        if (used.indexOf(i) < 0 && test(olds[i])) { used.push(i); card.match = olds[i]; return; }
      }
    };
    news.forEach(function (c) { if (c.uuid) { take(c, function (o) { return o.uuid === c.uuid; }); } });
    news.forEach(function (c) { if (c.id) { take(c, function (o) { return o.id === c.id; }); } });
    news.forEach(function (c) {
      if (!c.id) { take(c, function (o) { return !o.id && o.type === c.type; }); }
    });
    return olds.filter(function (o, i) { return used.indexOf(i) < 0; });
  };
  // A card of a page rendered for another nonce (or none) gets this page's nonce, so an
  // unchanged card compares equal to the document this page shows.
  /** @param {Element | null} incoming @param {boolean} keepPrevious */
  var reconcileCards = function (incoming, keepPrevious) {
    var section = /** @type {HTMLElement} */ (document.getElementById("cards"));
    var olds = boxes(section).map(cardOf);
    var news = incoming ? boxes(incoming).map(function (box) {
      var c = /** @type {PageCard & {html: string}} */ (cardOf(box));
      c.html = withAssets(withNonce(c.frame.getAttribute("srcdoc") || ""));
      return c;
    }) : [];
    var empty = section.querySelector(".empty");
    if (!news.length && keepPrevious && olds.length) {
      olds.forEach(function (o) { markPrevious(o.box); });
      if (empty) { empty.remove(); }
      return;
    }
    matchCards(olds, news).forEach(function (gone) { gone.box.remove(); });
    if (empty) { empty.remove(); }
    /** @type {Element | null} */
    var cursor = null;
    news.forEach(function (c) {
      /** @type {Element} */
      var box;
      if (c.match) {
        box = c.match.box;
        var frame = c.match.frame;
        var title = box.querySelector(".card-title");
        var newTitle = c.box.querySelector(".card-title");
        if (title && newTitle) { title.innerHTML = newTitle.innerHTML; }
        frame.title = c.frame.title;
        frame.dataset.uuid = c.uuid;
        frame.dataset.cardId = c.id;
        frame.dataset.cardType = c.type;
        unmarkPrevious(box);
        if (frame.devdHtml !== c.html) { load(frame, c.html); }
      } else {
        box = document.importNode(c.box, true);
        /** @type {CardFrame} */ (box.querySelector("iframe.card")).removeAttribute("srcdoc");
      }
      var expected = cursor ? cursor.nextElementSibling : section.firstElementChild;
      if (expected !== box) { section.insertBefore(box, expected); }  // new, or reordered
      if (!c.match) { load(/** @type {CardFrame} */ (box.querySelector("iframe.card")), c.html); }
      cursor = box;
    });
    var newEmpty = incoming && incoming.querySelector(".empty");
    if (newEmpty) { section.appendChild(document.importNode(newEmpty, true)); }
  };
  /** @param {unknown} html a devd preview page (anything else is ignored) */
  var applyPreview = function (html) {
    if (typeof html !== "string" || !html) { return; }
    var doc = new DOMParser().parseFromString(html, "text/html");
    if (!doc.getElementById("cards")) { return; }  // not a devd preview page
    var x = window.scrollX;
    var y = window.scrollY;
    var body = document.body.dataset;
    var next = doc.body.dataset;
    var sameStep = body.flow === next.flow && body.step === next.step;
    SECTIONS.forEach(function (id, index) {
      var mine = document.getElementById(id);
      var theirs = doc.getElementById(id);
      if (id === "cards") {
        reconcileCards(theirs, next.ok === "false" && sameStep);
        return;
      }
      if (!theirs) { if (mine) { mine.remove(); } return; }
      var fresh = document.importNode(theirs, true);
      if (mine) { mine.replaceWith(fresh); return; }
      /** @type {HTMLElement | null} */
      var before = null;  // the next section this page has, in the page's order
      for (var i = index + 1; i < SECTIONS.length && !before; i++) {
        before = document.getElementById(SECTIONS[i]);
      }
      document.body.insertBefore(fresh, before || document.querySelector("body > script"));
    });
    body.flow = next.flow || "";
    body.step = next.step || "";
    body.ok = next.ok || "";
    document.title = doc.title;
    linkify();
    hideSpinning();
    if (topOnNew(sameStep, next.ok === "false")) {
      restoring = null;  // a new step or a failure: its header and error box in view
      window.scrollTo(0, 0);
    } else {
      window.scrollTo(x, y);
    }
    count("previewUpdates");
    saveScroll();
  };

  // A new step's page, or a failure, starts at the top; the same step re-spun keeps its place.
  /** @param {boolean} sameStep @param {boolean} failed */
  function topOnNew(sameStep, failed) { return !sameStep || failed; }

  // --- A spin in flight: a bar with Cancel over the page; the pane's buttons ----------------
  var spinBar = function () {
    var bar = document.getElementById("spinning");
    if (!bar) {
      bar = document.createElement("div");
      bar.id = "spinning";
      bar.className = "spinning";
      document.body.insertBefore(bar, document.body.firstChild);
    }
    return bar;
  };
  /** @param {unknown} step */
  var safeStep = function (step) { return String(step || "").replace(/[^A-Za-z0-9_]/g, ""); };
  /** @param {string} step */
  function showSpinning(step) {
    var bar = spinBar();
    bar.hidden = false;
    bar.className = "spinning";
    bar.innerHTML = '<span class="spinner"></span><span>spinning <code></code>\u2026</span>' +
      '<button data-action="cancel">Cancel</button>';
    /** @type {HTMLElement} */ (bar.querySelector("code")).textContent = safeStep(step);
    if (safeStep(step) !== document.body.dataset.step) { document.body.classList.add("older"); }
  }
  function hideSpinning() {
    var bar = document.getElementById("spinning");
    if (bar) { bar.hidden = true; bar.innerHTML = ""; }
    document.body.classList.remove("older");
  }
  /** @param {string} step */
  function spinCancelled(step) {
    var bar = spinBar();
    bar.hidden = false;
    bar.className = "spinning cancelled";
    bar.innerHTML = '<span class="badge cancelled">cancelled</span><span>spin of <code></code> ' +
      'cancelled</span><button data-action="respin" class="secondary">Spin again</button>';
    /** @type {HTMLElement} */ (bar.querySelector("code")).textContent = safeStep(step);
    document.body.classList.remove("older");
  }
  /** @param {Event} event @param {string} selector @returns {HTMLElement | null} */
  var clicked = function (event, selector) {
    var target = /** @type {Element | null} */ (event.target);
    return target && target.closest ? target.closest(selector) : null;
  };
  document.addEventListener("click", function (event) {
    var b = clicked(event, "button[data-action]");
    if (!b || !vscode) { return; }
    event.preventDefault();
    /** @type {Extract<FromPage, {type: "devd/action"}>} */
    var action = { type: "devd/action", action: /** @type {PaneButton} */ (b.dataset.action) };
    if (b.dataset.step) { action.step = b.dataset.step; }
    vscode.postMessage(action);
  });
  // The full traceback, folded behind its summary, opens in place (no script: <details>).

  // --- VS Code: file links, scroll state, ready ---------------------------------------------
  /** @param {string} text @param {string} file @param {string | undefined} line */
  var link = function (text, file, line) {
    var a = document.createElement("a");
    a.href = "#";
    a.className = "open-file";
    a.textContent = text;
    a.dataset.file = file;
    a.dataset.line = line || "";
    return a;
  };
  function linkify() {
    if (!vscode) { return; }
    Array.prototype.forEach.call(document.querySelectorAll("#error .where[data-file]"), function (p) {
      if (!p.dataset.file || p.querySelector("a")) { return; }
      var a = link(p.textContent, p.dataset.file, p.dataset.line);
      p.textContent = "";
      p.appendChild(a);
    });
    // Frames of the traceback: `File "/path/x.py", line 12` links to that line.
    Array.prototype.forEach.call(document.querySelectorAll("#error .traceback, #error .traceback-full"), function (pre) {
      if (pre.dataset.linked) { return; }
      pre.dataset.linked = "1";
      var text = pre.textContent;
      var re = /File "([^"]+)", line (\d+)/g;
      var parts = [];
      var last = 0;
      var m;
      while ((m = re.exec(text))) {
        parts.push(document.createTextNode(text.slice(last, m.index)));
        parts.push(link(m[0], m[1], m[2]));
        last = re.lastIndex;
      }
      if (!parts.length) { return; }
      parts.push(document.createTextNode(text.slice(last)));
      pre.textContent = "";
      parts.forEach(function (n) { pre.appendChild(n); });
    });
  }
  document.addEventListener("click", function (event) {
    var a = clicked(event, "a.open-file");
    if (!a || !vscode) { return; }
    event.preventDefault();
    vscode.postMessage({ type: "devd/openFile", file: /** @type {string} */ (a.dataset.file),
                         line: a.dataset.line ? Number(a.dataset.line) : null });
  });
  // VS Code reloads a hidden webview when it is shown again: keep the scroll position in
  // the webview's state and go back there, also while the cards still grow to full height.
  /** @type { {x: number, y: number} | null } */
  var restoring = null;
  function saveScroll() {
    if (!vscode || restoring) { return; }
    /** @type {PageState} */
    var state = vscode.getState() || {};
    state.scrollX = window.scrollX;
    state.scrollY = window.scrollY;
    vscode.setState(state);
  }
  if (vscode) {
    /** @type {PageState} */
    var saved = vscode.getState() || {};
    if (typeof saved.scrollY === "number" && saved.scrollY > 0) {
      restoring = { x: saved.scrollX || 0, y: saved.scrollY };
      var stop = function () { restoring = null; };
      ["wheel", "keydown", "mousedown", "touchstart"].forEach(function (name) {
        window.addEventListener(name, stop, { once: true, passive: true });
      });
      window.addEventListener("load", function () { setTimeout(stop, 3000); });
    }
    var pending = false;
    window.addEventListener("scroll", function () {
      if (pending) { return; }
      pending = true;
      setTimeout(function () { pending = false; saveScroll(); }, 100);
    }, { passive: true });
  }
  var restore = function () { if (restoring) { window.scrollTo(restoring.x, restoring.y); } };

  // Messages from the host only: the page itself, its parent, or, in a VS Code webview,
  // the webview's host frame. VS Code sets window.parent = window there, so the host is
  // known by its origin: the page's own (cards' sandboxed frames have the opaque "null").
  /** @param {MessageEvent} event */
  var fromHost = function (event) {
    if (event.source === window.parent || event.source === window) { return true; }
    return !!vscode && event.origin === window.location.origin &&
      !frames().some(function (f) { return f.contentWindow === event.source; });
  };
  window.addEventListener("message", function (event) {
    /** @type {ToPage | FromFrame} */
    var msg = event.data || {};
    if (msg.type === "devd/cardHeight") {
      // Keep each card's height equal to its content, as the card itself reports it.
      var height = msg.height;
      frames().forEach(function (f) {
        if (f.contentWindow === event.source && height > 0) { f.style.height = Math.min(height + 24, 20000) + "px"; }
      });
      restore();
      return;
    }
    if (msg.type === "devd/cardReady" || msg.type === "devd/cardSwapped") {
      var reply = msg;
      frames().forEach(function (f) {
        if (f.contentWindow !== event.source) { return; }
        if (reply.type === "devd/cardReady") { f.devdReady = !f.devdLoading; return; }
        // The card could not take the data in place: load the document it should show.
        if (!reply.ok && reply.seq === f.devdSwap) { reload(f, /** @type {string} */ (f.devdHtml)); }
      });
      return;
    }
    if (!fromHost(event)) { return; }
    if (msg.type === "devd/cardUpdated") {
      apply(msg.card || (msg.params && msg.params.card));
    } else if (msg.type === "devd/spinStatus") {
      var status = document.getElementById("status");
      if (status) { status.textContent = msg.text; status.className = "badge " + (msg.ok ? "ok" : "failed"); }
    } else if (msg.type === "devd/preview") {
      applyPreview(msg.html);
      restore();
    } else if (msg.type === "devd/spinning") {
      showSpinning(msg.step);
    } else if (msg.type === "devd/spinEnded") {
      if (msg.outcome === "cancelled") { spinCancelled(msg.step); } else { hideSpinning(); }
      if (msg.outcome === "refused" && msg.message) {  // it never started: say why, briefly
        var bar = spinBar();
        bar.hidden = false;
        bar.className = "spinning cancelled";
        bar.textContent = "spin of " + safeStep(msg.step) + " did not start: " + String(msg.message);
      }
    }
  });
  page.devdApplyCardUpdate = apply;
  page.devdApplyPreview = applyPreview;
  page.devdTopOnNew = topOnNew;
  // Outside an editor: live updates from an event stream, if the page was given one.
  var url = document.body.dataset.eventsUrl;
  if (url && window.EventSource) {
    var source = new EventSource(url);
    source.addEventListener("cardUpdated", function (e) { apply(JSON.parse(/** @type {MessageEvent} */ (e).data)); });
  }
  linkify();
  restore();
  if (vscode) { vscode.postMessage({ type: "devd/ready" }); }
})();
