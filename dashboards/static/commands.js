// While a heating command waits for the device's acknowledgement, re-read its state.
(function () {
  "use strict";
  var box = document.getElementById("commands");
  if (!box) return;
  var REFRESH_MS = 3000;
  function poll() {
    var url = box.getAttribute("data-refresh");
    if (!url) return;
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        box.innerHTML = html;
        var waiting = box.querySelector('tr[data-state="pending"], tr[data-state="accepted"]');
        if (!waiting) box.removeAttribute("data-refresh");
        setTimeout(poll, REFRESH_MS);
      })
      .catch(function () { setTimeout(poll, REFRESH_MS * 3); });
  }
  setTimeout(poll, REFRESH_MS);
})();
