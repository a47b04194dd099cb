// Draws every chart of the page with uPlot from the JSON beside it (exact decimal text; parsed
// here only to plot), and again after htmx swaps new content in. No inline script: the CSP
// allows scripts from /ui/static only.
(function () {
  "use strict";
  var COLOURS = ["#222", "#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#319795"];

  function draw(figure) {
    if (figure.dataset.drawn) return;
    var data = JSON.parse(figure.querySelector(".chart-data").textContent);
    var target = figure.querySelector(".plot");
    var width = Math.max(320, target.clientWidth || figure.clientWidth || 600);
    var series = [{}];
    var columns = [data.x];
    data.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: i === 0 ? 2 : 1.5 });
      columns.push(s.values.map(function (v) { return v === null ? null : Number(v); }));
    });
    new uPlot({ width: width, height: 240, series: series, axes: [{}, { size: 70 }] }, columns, target);
    figure.dataset.drawn = "1";
  }

  function drawAll(root) {
    if (typeof uPlot === "undefined") return;
    (root || document).querySelectorAll("figure.chart").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawAll(event.target); });
})();
