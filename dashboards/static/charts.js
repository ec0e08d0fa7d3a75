// Property charts with uPlot: each chart draws one metric with the home's alert thresholds
// as dashed, labelled series (so they are in the legend), axes with units, local time.
(function () {
  "use strict";
  if (!window.uPlot) return;
  var COLOURS = { temp_c: "#b3261e", rh_pct: "#0b4f9c", dew_point_c: "#5b3a8a", mould_index: "#1d6b35" };
  var LIMIT = ["#1b1b1b", "#7a4a00"];
  // Local (UK) dates and 24-hour times, not the browser's default US style.
  function when(t) {
    return new Date(t * 1000).toLocaleString("en-GB", { weekday: "short", day: "numeric", month: "short",
                                                        hour: "2-digit", minute: "2-digit" });
  }
  function ticks(u, splits) {
    var lastDay = null;
    return splits.map(function (t) {
      var d = new Date(t * 1000);
      var day = d.toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short" });
      var time = d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
      var label = day !== lastDay ? time + "\n" + day : time;
      lastDay = day;
      return label;
    });
  }
  document.querySelectorAll("section.sensor").forEach(function (section) {
    var data = JSON.parse(section.querySelector("script.chart-data").textContent);
    var ts = data.series.ts;
    section.querySelectorAll(".chart").forEach(function (el) {
      var metric = el.getAttribute("data-metric"), unit = el.getAttribute("data-unit");
      var values = data.series[metric];
      var series = [{ label: "Time", value: function (u, t) { return t == null ? "—" : when(t); } }, { label: el.getAttribute("data-label") + (unit ? " (" + unit + ")" : ""),
                      stroke: COLOURS[metric], width: 2, spanGaps: false,
                      value: function (u, v) { return v == null ? "—" : v.toFixed(metric === "mould_index" ? 2 : 1) + (unit ? " " + unit : ""); } }];
      var columns = [ts, values];
      data.thresholds.filter(function (t) { return t.metric === metric; }).forEach(function (t, i) {
        series.push({ label: t.label, stroke: LIMIT[i % LIMIT.length], width: 2, dash: [8, 5], points: { show: false },
                      value: function () { return t.value + (unit ? " " + unit : ""); } });
        columns.push(ts.map(function () { return t.value; }));
      });
      var width = Math.max(300, el.clientWidth || 480);
      var opts = {
        width: width, height: 220, series: series, tzDate: function (t) { return new Date(t * 1000); },
        axes: [{ stroke: "#1b1b1b", grid: { stroke: "#e3e6ea" }, values: ticks },
               { stroke: "#1b1b1b", grid: { stroke: "#e3e6ea" }, label: unit || "index", size: 55 }],
        scales: { y: metric === "mould_index" ? { range: [0, 6] } : {} },
        legend: { live: true }, cursor: { focus: { prox: 16 } }
      };
      el.setAttribute("role", "img");
      el.setAttribute("aria-label", el.getAttribute("data-label") + " chart; the same readings are in the table below.");
      new uPlot(opts, columns, el);
    });
  });
})();
