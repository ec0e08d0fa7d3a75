// The queue re-reads its rows when an alert in the officer's scope changes, keeping focus
// where it was when the row is still there.
(function () {
  "use strict";
  var body = document.getElementById("queue-rows");
  var status = document.getElementById("live-status");
  if (!body) return;
  var pending = null;
  function refresh() {
    pending = null;
    var active = document.activeElement;
    var row = active && active.closest ? active.closest("tr[data-alert]") : null;
    var keep = row ? [row.getAttribute("data-alert"), active.name, active.value] : null;
    fetch("/queue?part=rows", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        if (body.contains(document.activeElement) && document.activeElement.tagName === "TEXTAREA" &&
            document.activeElement.value) { return; }  // someone is typing a note: later
        body.innerHTML = html;
        var count = body.querySelectorAll("tr[data-alert]").length;
        if (status) status.textContent = "Queue updated at " + new Date().toLocaleTimeString("en-GB") +
          ": " + count + " open.";
        if (keep) {
          var again = body.querySelector('tr[data-alert="' + CSS.escape(keep[0]) + '"]');
          var target = again && (again.querySelector('button[name="' + keep[1] + '"][value="' + keep[2] + '"]') ||
                                 again.querySelector("a, button, summary"));
          if (target) target.focus();
        }
      })
      .catch(function () { if (status) status.textContent = "Could not update the queue; reload the page."; });
  }
  document.addEventListener("civic:alert", function () {
    if (!pending) pending = setTimeout(refresh, 300);  // a burst of events, one fetch
  });
})();
