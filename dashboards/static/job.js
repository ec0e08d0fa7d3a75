// A planning job's progress: poll its state until it is done, then show the new plan.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box) return;
  var POLL_MS = 1500;
  var state = document.getElementById("job-state"), progress = document.getElementById("job-progress");
  function poll() {
    fetch("/waste/jobs/" + encodeURIComponent(box.dataset.job), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (job) {
        state.textContent = job.state;
        progress.textContent = job.progress || "";
        if (job.state === "done" && job.plan_id) {
          window.location.assign("/waste?stream=" + encodeURIComponent(box.dataset.stream) +
                                 "&plan=" + encodeURIComponent(job.plan_id));
        } else if (job.state === "failed") {
          progress.textContent = job.error || "failed";
        } else {
          setTimeout(poll, POLL_MS);
        }
      })
      .catch(function () { setTimeout(poll, POLL_MS * 2); });
  }
  if (state.textContent !== "done" && state.textContent !== "failed") setTimeout(poll, POLL_MS);
})();
