// devd preview: forwards live card updates into the sandboxed card frames, in place.
(function () {
  "use strict";
  var frames = function () { return Array.prototype.slice.call(document.querySelectorAll("iframe.card")); };
  var frameFor = function (card) {
    var all = frames();
    var match = all.filter(function (f) {
      return (card.uuid && f.dataset.uuid === card.uuid) || (card.id && f.dataset.cardId === card.id);
    });
    return match.length ? match : all.slice(0, 1);
  };
  // Keep each card's height equal to its content, reported by the card itself.
  window.addEventListener("message", function (event) {
    var msg = event.data || {};
    if (msg.type === "devd/cardHeight") {
      frames().forEach(function (f) {
        if (f.contentWindow === event.source && msg.height > 0) { f.style.height = Math.min(msg.height + 24, 20000) + "px"; }
      });
    } else if (msg.type === "devd/cardUpdated" && msg.card) {
      apply(msg.card);
    } else if (msg.type === "devd/spinStatus") {
      var status = document.getElementById("status");
      if (status) { status.textContent = msg.text; status.className = "badge " + (msg.ok ? "ok" : "failed"); }
    }
  });
  function apply(card) {
    var updated = 0;
    frameFor(card).forEach(function (frame) {
      if (card.html) {
        var x = window.scrollX, y = window.scrollY;  // a new layout: swap the card, keep our place
        frame.srcdoc = card.html;
        window.scrollTo(x, y);
      } else if (frame.contentWindow) {
        frame.contentWindow.postMessage({ type: "devd/cardUpdated", components: card.components || {} }, "*");
      }
      updated += 1;
    });
    document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + updated);
  }
  window.devdApplyCardUpdate = apply;
  // Outside an editor: live updates from an event stream, if the page was given one.
  var url = document.body.dataset.eventsUrl;
  if (url && window.EventSource) {
    var source = new EventSource(url);
    source.addEventListener("cardUpdated", function (e) { apply(JSON.parse(e.data)); });
  }
})();
