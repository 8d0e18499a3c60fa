// Thin wrapper over uPlot: line charts that fill their card and follow its width.
"use strict";
gradq.charts = (() => {
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c",
                  "#0891b2", "#db2777", "#65a30d", "#4f46e5", "#b45309"];

  // labels: one per y series; opts.points draws markers (epoch charts have few points)
  function make(el, labels, opts = {}) {
    const height = opts.height || 220;
    const series = [{ label: opts.x || "step" }].concat(labels.map((label, i) => ({
      label,
      stroke: COLORS[i % COLORS.length],
      width: 1.5,
      spanGaps: true,
      points: { show: !!opts.points, size: 6 },
      value: (u, v) => gradq.fmt(v),
    })));
    const empty = [[]].concat(labels.map(() => []));
    const chart = new uPlot({
      width: Math.max(el.clientWidth, 200),
      height,
      series,
      scales: { x: { time: false } },
      axes: [
        // epochs are whole numbers: no 1.5 ticks
        Object.assign({ label: opts.x || "step" }, opts.x === "epoch" ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500] } : {}),
        { size: 56, values: (u, ticks) => ticks.map((t) => gradq.fmt(t, 3)) },
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    }, empty, el);
    new ResizeObserver(() => chart.setSize({ width: Math.max(el.clientWidth, 200), height })).observe(el);
    return chart;
  }

  // [[x...], [y...]] per job -> uPlot's aligned columns (missing values are null)
  function joined(pairs) {
    if (!pairs.length) return [[]];
    return uPlot.join(pairs.map(([x, y]) => [x, y]));
  }

  return { make, joined, COLORS };
})();
