// Ravel dashboard: live refresh of server-rendered fragments. No build step, no libraries.
// An element with data-refresh-url is replaced by that URL's HTML every data-refresh-seconds
// while the server answers X-Ravel-Live: 1. If X-Ravel-Status differs from the element's
// data-status, the page reloads (the actions a run allows changed). Typing in the element
// pauses its refresh.
(function () {
  "use strict";
  function poll(box) {
    var url = box.getAttribute("data-refresh-url");
    var every = (parseFloat(box.getAttribute("data-refresh-seconds")) || 2) * 1000;
    var dirty = false;
    box.addEventListener("input", function () { dirty = true; });
    function later(ms) { window.setTimeout(tick, ms); }
    function tick() {
      if (dirty || document.hidden) { later(every); return; }
      fetch(url, { credentials: "same-origin", headers: { "X-Ravel-Refresh": "1" } })
        .then(function (r) {
          if (r.status === 401 || r.redirected) { window.location.reload(); return; }
          if (!r.ok) { later(every * 3); return; }
          var status = r.headers.get("X-Ravel-Status");
          var shown = box.getAttribute("data-status");
          var live = r.headers.get("X-Ravel-Live") === "1";
          return r.text().then(function (html) {
            if (status && shown && status !== shown) { window.location.reload(); return; }
            box.innerHTML = html;
            if (live) { later(every); }
          });
        })
        .catch(function () { later(every * 3); });
    }
    later(every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-refresh-url]"), poll);
  });
})();
