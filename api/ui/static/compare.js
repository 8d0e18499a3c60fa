// The compare page: every job's curves overlaid, one colour per job (the table's swatches).
"use strict";
(() => {
  const root = document.getElementById("compare");
  const ids = root.dataset.jobs ? root.dataset.jobs.split(",") : [];
  const color = (i) => gradq.charts.COLORS[i % gradq.charts.COLORS.length];
  document.querySelectorAll(".swatch").forEach((s) => { s.style.background = color(Number(s.dataset.index)); });
  if (!ids.length) return;
  const names = JSON.parse(root.dataset.names || "{}");

  function overlay(elId, x, pairs, labels) {
    const el = document.getElementById(elId);
    const chart = gradq.charts.make(el, labels, { x, points: x === "epoch" });
    const usable = pairs.filter(([xs]) => xs.length);
    if (usable.length) chart.setData(gradq.charts.joined(pairs.map(([xs, ys]) => [xs, ys])));
    return usable.length;
  }

  Promise.all(ids.map((id) => gradq.api(`/v1/jobs/${id}/metrics?max_points=1000`))).then((answers) => {
    const metrics = answers.map((a) => (a.ok ? a.data : { steps: { step: [], train_loss: [] }, epochs: { epoch: [] } }));
    // legend: the job's name and the start of its id (names repeat across runs)
    const labels = ids.map((id) => `${names[id] || "job"} (${id.slice(4, 10)})`);
    const drawn = overlay("compare-chart", "step", metrics.map((m) => [m.steps.step, m.steps.train_loss]), labels);
    document.getElementById("compare-chart").dataset.series = String(drawn);
    const epochs = (name) => metrics.map((m) => [m.epochs.epoch, m.epochs[name] || []]);
    overlay("compare-val-loss", "epoch", epochs("val_loss"), labels);
    overlay("compare-val-acc", "epoch", epochs("val_accuracy"), labels);
    overlay("compare-train-loss", "epoch", epochs("train_loss"), labels);
    overlay("compare-throughput", "epoch", epochs("samples_per_second"), labels);
  });
})();
