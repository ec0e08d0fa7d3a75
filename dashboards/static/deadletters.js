// Dead letters per hour, one line per reason (the table under it holds the same totals).
(function () {
  "use strict";
  var el = document.getElementById("dl-chart");
  if (!el || !window.uPlot) return;
  var d = JSON.parse(document.getElementById("dl-data").textContent);
  var COLOURS = ["#b3261e", "#0b4f9c", "#1d6b35", "#7a4a00", "#5b3a8a", "#00695c", "#ad1457"];
  var DASHES = [null, [6, 4], [2, 3], [10, 3, 2, 3]];
  function hour(t) {
    return new Date(t * 1000).toLocaleString("en-GB", { weekday: "short", hour: "2-digit", minute: "2-digit" });
  }
  var series = [{ label: "Hour", value: function (u, t) { return t == null ? "—" : hour(t); } }];
  d.reasons.forEach(function (reason, i) {
    series.push({ label: reason, stroke: COLOURS[i % COLOURS.length], width: 2, dash: DASHES[i % DASHES.length] });
  });
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", "Dead letters per hour by reason; totals in the table below.");
  new uPlot({ width: Math.max(320, el.clientWidth || 640), height: 240, series: series,
              // "Tue 11:00" needs about 70 px: ask for ticks at least 90 px apart, so they never overlap.
              axes: [{ space: 90, values: function (u, splits) { return splits.map(hour); } },
                     { label: "messages per hour", size: 60 }] }, [d.ts].concat(d.counts), el);
})();
