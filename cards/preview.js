// devd preview: forwards live card updates into the sandboxed card frames, in place.
(function () {
  "use strict";
  var frames = function () { return Array.prototype.slice.call(document.querySelectorAll("iframe.card")); };
  // The frame showing `card`: same uuid (same spin), else same @card id, else the only
  // frame of that type. Card uuids change with every spin; ids and types do not.
  var frameFor = function (card) {
    var all = frames();
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
    document.getElementById("cards").appendChild(box);
    return frame;
  };
  // Messages for a frame whose new document is still loading wait for it: posted earlier,
  // they would reach the document being replaced and be lost.
  var send = function (frame, message) {
    if (frame.devdLoading) { frame.devdQueue.push(message); return; }
    if (frame.contentWindow) { frame.contentWindow.postMessage(message, "*"); }
  };
  var load = function (frame, html) {
    frame.devdQueue = frame.devdQueue || [];
    frame.devdLoading = true;
    frame.onload = function () {
      frame.devdLoading = false;
      var queued = frame.devdQueue.splice(0);
      queued.forEach(function (message) { send(frame, message); });
    };
    frame.srcdoc = html;  // the frame keeps its height until the new card reports its own
  };
  function apply(card) {
    if (!card) { return; }
    var frame = frameFor(card);
    if (card.html) {
      if (!frame) { frame = newFrame(card); }
      frame.dataset.uuid = card.uuid || frame.dataset.uuid;
      load(frame, card.html);
    } else if (frame) {
      send(frame, { type: "devd/cardUpdated", components: card.components || {} });
    } else {
      return;  // data for a card this page has not seen rendered: nothing to patch
    }
    document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + 1);
  }
  window.addEventListener("message", function (event) {
    var msg = event.data || {};
    if (msg.type === "devd/cardHeight") {
      // Keep each card's height equal to its content, as the card itself reports it.
      frames().forEach(function (f) {
        if (f.contentWindow === event.source && msg.height > 0) { f.style.height = Math.min(msg.height + 24, 20000) + "px"; }
      });
      return;
    }
    if (event.source !== window.parent && event.source !== window) { return; }  // host only
    if (msg.type === "devd/cardUpdated") {
      apply(msg.card || (msg.params && msg.params.card));
    } else if (msg.type === "devd/spinStatus") {
      var status = document.getElementById("status");
      if (status) { status.textContent = msg.text; status.className = "badge " + (msg.ok ? "ok" : "failed"); }
    }
  });
  window.devdApplyCardUpdate = apply;
  // Outside an editor: live updates from an event stream, if the page was given one.
  var url = document.body.dataset.eventsUrl;
  if (url && window.EventSource) {
    var source = new EventSource(url);
    source.addEventListener("cardUpdated", function (e) { apply(JSON.parse(e.data)); });
  }
})();
