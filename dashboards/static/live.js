// The API's event stream for the logged-in person (GET /live, the session cookie): other
// scripts listen for "civic:alert" and "civic:reading" events on document.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var status = document.getElementById("live-status");
  var source = new EventSource("/live");
  function say(text) { if (status) status.textContent = text; }
  source.addEventListener("open", function () { say("Live: updates arrive without reloading."); });
  source.addEventListener("error", function () { say("Live updates paused; retrying…"); });
  ["alert", "reading"].forEach(function (kind) {
    source.addEventListener(kind, function (e) {
      var detail;
      try { detail = JSON.parse(e.data); } catch (err) { return; }
      document.dispatchEvent(new CustomEvent("civic:" + kind, { detail: detail }));
    });
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
