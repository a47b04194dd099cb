// Draws every chart of the page with uPlot from the JSON beside it (exact decimal text; parsed
// here only to plot), and again after htmx swaps new content in. No inline script: the CSP
// allows scripts from /ui/static only.
(function () {
  "use strict";
  var COLOURS = ["#222", "#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#319795"];

  var BAND = "rgba(43, 108, 176, 0.12)";

  // How a series asks to be drawn: "dash" (a limit, a projection), "band" (an interval's edge,
  // faint; the band fills between), "point" (one marked day, e.g. the day a budget runs out).
  function styled(s, base) {
    if (s.style === "dash") base.dash = [6, 4];
    if (s.style === "band") { base.stroke = "rgba(43, 108, 176, 0.35)"; base.width = 1; }
    if (s.style === "point") {
      base.stroke = "#9b2c2c";
      base.width = 0;
      base.points = { show: true, size: 10, fill: "#9b2c2c" };
    }
    return base;
  }

  function draw(figure) {
    if (figure.dataset.drawn) return;
    var data = JSON.parse(figure.querySelector(".chart-data").textContent);
    var target = figure.querySelector(".plot");
    var width = Math.max(320, target.clientWidth || figure.clientWidth || 600);
    var series = [{}];
    var columns = [data.x];
    var index = {};
    data.series.forEach(function (s, i) {
      index[s.label] = i + 1;
      series.push(styled(s, { label: s.label, stroke: COLOURS[i % COLOURS.length], width: i === 0 ? 2 : 1.5 }));
      columns.push(s.values.map(function (v) { return v === null ? null : Number(v); }));
    });
    // A band (a forecast's interval) fills between two of the series, named by label.
    var bands = (data.bands || []).map(function (pair) {
      return { series: [index[pair[0]], index[pair[1]]], fill: BAND };
    });
    var options = { width: width, height: 240, series: series, axes: [{}, { size: 70 }] };
    if (bands.length) options.bands = bands;
    new uPlot(options, columns, target);
    figure.dataset.drawn = "1";
  }

  function drawAll(root) {
    if (typeof uPlot === "undefined") return;
    (root || document).querySelectorAll("figure.chart").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawAll(event.target); });
})();
