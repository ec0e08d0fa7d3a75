// The bin map: Leaflet over a plain background (tiles only when the server names a tile
// URL), bins on one canvas so thousands draw quickly, each truck's stops numbered in order.
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L) return;
  var data = JSON.parse(document.getElementById("map-data").textContent);
  var map = L.map(el, { preferCanvas: true, zoomSnap: 0.25, attributionControl: !!el.dataset.tiles });
  if (el.dataset.tiles) {
    L.tileLayer(el.dataset.tiles, { maxZoom: 19, attribution: el.dataset.attribution || "" }).addTo(map);
  }
  var canvas = L.canvas({ padding: 0.2 });
  var ROUTE_COLOURS = ["#0b4f9c", "#7b1fa2", "#00695c", "#ad1457", "#4e342e", "#283593", "#2e7d32", "#e65100"];

  function fillClass(fill, threshold) {
    if (fill === null) return { r: 4, colour: "#9e9e9e", text: "no reading" };
    if (fill >= threshold) return { r: 8, colour: "#c62828", text: "at or over threshold" };
    if (fill >= 50) return { r: 6, colour: "#f2c200", text: "half full or more" };
    return { r: 4, colour: "#2e7d32", text: "under half full" };
  }
  var markers = {};
  var bounds = [];
  // One tooltip for all the bins, its text made when a bin is hovered: 3,000 tooltips bound
  // up front cost more than drawing the bins.
  var bins = L.featureGroup().bindTooltip(function (layer) { return layer.options.describe(); });
  function describe(id, fill, forecast, flags, c, live) {
    return function () {
      return id + ": " + (fill === null ? "no reading" : fill + " % full (" + c.text + (live ? ", live" : "") + ")") +
        (forecast !== null && !live ? "; forecast " + forecast + " % at the visit" : "") +
        (flags ? "; " + flags.split("").map(function (f) { return data.flags[f]; }).join(", ") : "");
    };
  }
  data.bins.forEach(function (b) {
    var id = b[0], lat = b[1], lon = b[2], fill = b[3], forecast = b[4], threshold = b[5], flags = b[6];
    var c = fillClass(fill, threshold);
    var forecastFull = forecast !== null && forecast >= threshold && (fill === null || fill < threshold);
    var m = L.circleMarker([lat, lon], { renderer: canvas, radius: c.r, color: "#1b1b1b", weight: 1,
      fillColor: c.colour, fillOpacity: 0.9, dashArray: forecastFull ? "3 3" : null,
      describe: describe(id, fill, forecast, flags, c, false) });
    if (forecastFull) {
      L.circleMarker([lat, lon], { renderer: canvas, radius: c.r + 4, color: "#1b1b1b", weight: 1.5,
        dashArray: "3 3", fill: false, interactive: false }).addTo(map);
    }
    bins.addLayer(m);
    markers[id] = { marker: m, threshold: threshold, flags: flags };
    bounds.push([lat, lon]);
    if (flags) {
      // Above and to the left of the bin (stop numbers go to the right), the bin still visible.
      L.marker([lat, lon], { icon: L.divIcon({ className: "flag-icon", html: flags, iconSize: [18, 18],
                                               iconAnchor: [21, 21] }),
        keyboard: false, title: id + ": " + flags.split("").map(function (f) { return data.flags[f]; }).join(", ") }).addTo(map);
    }
  });
  bins.addTo(map);
  data.routes.forEach(function (route, i) {
    var colour = ROUTE_COLOURS[i % ROUTE_COLOURS.length];
    // On roads the line follows the streets; without a road network it joins the stops.
    var line = route.path || route.stops.map(function (s) { return [s[2], s[3]]; });
    L.polyline(line, { color: colour, weight: 3, opacity: 0.85 }).bindTooltip(route.vehicle).addTo(map);
    route.stops.forEach(function (s, seq) {
      if (s[1] === "depot" || s[1] === "break") return;
      var tip = s[1] === "tip";
      var eta = new Date(0); eta.setUTCSeconds(s[4]);
      var label = tip ? "T" : String(seq);
      L.marker([s[2], s[3]], {
        // Above and to the right of the stop, so the bin's own marker stays visible.
        icon: L.divIcon({ className: "stop-label" + (tip ? " tip" : ""), html: label,
                          iconSize: [label.length > 2 ? 26 : 20, 18], iconAnchor: [-3, 21] }),
        keyboard: false, title: route.vehicle + " stop " + seq + (tip ? " (tip run)" : "") + ": " + s[0] +
          ", ETA " + eta.toISOString().substr(11, 5)
      }).addTo(map);
    });
  });
  if (data.routes.some(function (route) { return route.path; })) {
    // Street paths come from OpenStreetMap: its licence (ODbL) asks for the credit on the map.
    (map.attributionControl || L.control.attribution({ prefix: false }).addTo(map))
      .addAttribution("Routes &copy; OpenStreetMap contributors");
  }
  if (bounds.length) map.fitBounds(bounds, { padding: [12, 12] });
  else map.setView([52.636, -1.133], 13);

  document.addEventListener("civic:reading", function (e) {
    var r = e.detail, m = markers[r.device_id];
    if (!m || r.fill_pct === null || r.fill_pct === undefined) return;
    var c = fillClass(Math.round(r.fill_pct), m.threshold);
    m.marker.setStyle({ fillColor: c.colour }).setRadius(c.r);
    m.marker.options.describe = describe(r.device_id, Math.round(r.fill_pct), null, m.flags, c, true);
  });
  window.civicMap = map;
  window.civicMarkers = markers;
})();
