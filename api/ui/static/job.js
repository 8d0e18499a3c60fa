// The job page: live status, charts fed by the SSE stream plus /metrics, cancel, copy spec.
"use strict";
(() => {
  const root = document.getElementById("job");
  const jobId = root.dataset.jobId;
  const $ = (id) => document.getElementById(id);
  const lossEl = $("loss-chart");
  const charts = {
    loss: gradq.charts.make(lossEl, ["train loss"], { x: "step" }),
    epochLoss: gradq.charts.make($("epoch-loss-chart"), ["train loss", "val loss"], { x: "epoch", points: true }),
    valAcc: gradq.charts.make($("val-acc-chart"), ["val accuracy"], { x: "epoch", points: true }),
    throughput: gradq.charts.make($("throughput-chart"), ["samples/s"], { x: "epoch", points: true }),
    // a 1-shard job has no communication chart (the page says why instead)
    comm: $("comm-chart") && gradq.charts.make($("comm-chart"), ["comm seconds"], { x: "epoch", points: true }),
  };
  const RESUMABLE = ["cancelled", "failed"];
  // Server-side downsampling keeps the initial draw small; live points are appended after it,
  // and past REFETCH_ABOVE points the curve is fetched downsampled again.
  const MAX_POINTS = 1000;
  const REFETCH_ABOVE = 3000;
  const curve = { steps: [], losses: [], recorded: 0 };
  let fetching = null;
  let again = false;
  let status = root.dataset.status;

  function drawCurve() {
    charts.loss.setData([curve.steps, curve.losses]);
    lossEl.dataset.points = String(curve.steps.length);
    const note = curve.recorded > curve.steps.length ? `${curve.recorded} points recorded, ${curve.steps.length} drawn (averaged)` : "";
    $("loss-note").textContent = note;
  }

  function drawEpochs(epochs) {
    if (!epochs || !epochs.epoch) return;
    const x = epochs.epoch;
    charts.epochLoss.setData([x, epochs.train_loss, epochs.val_loss]);
    charts.valAcc.setData([x, epochs.val_accuracy]);
    charts.throughput.setData([x, epochs.samples_per_second]);
    if (charts.comm) charts.comm.setData([x, epochs.comm_seconds]);
    const acc = epochs.val_accuracy.filter((v) => typeof v === "number");
    if (acc.length) $("best-val").textContent = gradq.pct(Math.max(...acc));
  }

  function historyColumns(history) {
    const cols = { epoch: [], train_loss: [], val_loss: [], val_accuracy: [], samples_per_second: [], comm_seconds: [] };
    for (const entry of history || []) for (const k in cols) cols[k].push(entry[k] ?? null);
    return cols;
  }

  async function fetchCurve(full) {
    const query = full ? `max_points=${MAX_POINTS}` : `since=${curve.recorded}&max_points=100000`;
    const answer = await gradq.api(`/v1/jobs/${jobId}/metrics?${query}`);
    if (answer.ok && applyCurve(answer.data, full)) await fetchCurve(true);
  }

  // draws the answer of /metrics; true when the appended curve grew too long (fetch it anew)
  function applyCurve(m, full) {
    if (full || m.points_recorded < curve.recorded) {
      curve.steps = m.steps.step.slice();
      curve.losses = m.steps.train_loss.slice();
      drawEpochs(m.epochs);
    } else {
      const last = curve.steps.length ? curve.steps[curve.steps.length - 1] : 0;
      m.steps.step.forEach((s, i) => {
        if (s > last) { curve.steps.push(s); curve.losses.push(m.steps.train_loss[i]); }
      });
    }
    curve.recorded = m.points_recorded;
    if (!full && curve.steps.length > REFETCH_ABOVE) return true;
    drawCurve();
    return false;
  }

  // one fetch at a time; events arriving meanwhile ask for one more afterwards
  function refreshCurve(full = false) {
    if (fetching) { again = true; return fetching; }
    fetching = fetchCurve(full).finally(() => {
      fetching = null;
      if (again) { again = false; refreshCurve(); }
    });
    return fetching;
  }

  function showResume(resumable) {
    $("resume").classList.toggle("hidden", !resumable);
  }

  // the server's rule (GET /v1/jobs/{id} "resumable"), so the button never leads to a 409
  async function checkResumable() {
    const answer = await gradq.api(`/v1/jobs/${jobId}`);
    if (answer.ok && answer.data.status === status) showResume(answer.data.resumable === true);
  }

  function showRecord(data) {
    if (data.status) {
      status = data.status;
      gradq.setStatus($("status"), status);
      $("cancel").disabled = gradq.FINAL.includes(status) || status === "cancelling";
      if (typeof data.resumable === "boolean") showResume(data.resumable);
      else if (!RESUMABLE.includes(status)) showResume(false);
      else checkResumable();  // cancelled or failed: only a job with a checkpoint resumes
    }
    if ("status_reason" in data) $("reason").textContent = data.status_reason || "";
    if (typeof data.progress === "number") $("progress-bar").style.width = (100 * data.progress).toFixed(1) + "%";
    if (data.epoch != null) {
      const total = data.epochs ?? (data.spec && data.spec.epochs) ?? $("epoch").textContent.split("/")[1];
      $("epoch").textContent = `${data.epoch}/${total}`;
    }
    if (data.step != null) $("step").textContent = `${data.step}/${data.steps_total ?? $("step").textContent.split("/")[1]}`;
    if (typeof data.train_loss === "number") $("train-loss").textContent = gradq.fmt(data.train_loss);
    if (data.restarts != null) $("restarts").textContent = data.restarts;
    // the server renders "YYYY-MM-DD HH:MM:SS" in UTC; a job that starts while the page is open
    // announces started_at in its "running" status event
    if (data.started_at) $("started").textContent = new Date(data.started_at).toISOString().replace("T", " ").slice(0, 19);
    if (data.history) drawEpochs(historyColumns(data.history));
    if (data.metrics && typeof data.metrics.test_accuracy === "number") $("test-acc").textContent = gradq.pct(data.metrics.test_accuracy);
    if (data.model_id) {
      const link = $("model-link");
      link.href = "/ui/models/" + data.model_id;
      link.classList.remove("hidden");
    }
  }

  function addTimeline(statusName, reason) {
    const list = $("timeline");
    const li = document.createElement("li");
    const badge = document.createElement("span");
    gradq.setStatus(badge, statusName);
    const when = document.createElement("span");
    when.className = "small muted";
    when.textContent = " " + new Date().toISOString().replace("T", " ").slice(0, 19) + " ";
    const why = document.createElement("span");
    why.className = "small";
    why.textContent = reason || "";
    li.append(badge, when, why);
    list.append(li);
  }

  function follow() {
    // from the last event the server rendered: a change in between still reaches the timeline
    const after = root.dataset.eventsAfter;
    const source = new EventSource(`/v1/jobs/${jobId}/events` + (after ? `?after=${after}` : ""));
    source.addEventListener("state", (e) => showRecord(JSON.parse(e.data)));
    source.addEventListener("progress", (e) => { showRecord(JSON.parse(e.data)); refreshCurve(); });
    source.addEventListener("epoch", (e) => { showRecord(JSON.parse(e.data)); refreshCurve(); });
    source.addEventListener("status", (e) => {
      const data = JSON.parse(e.data);
      showRecord(data);
      addTimeline(data.status, data.status_reason);
      refreshCurve();
    });
    source.addEventListener("end", async () => {
      source.close();
      const record = await gradq.api(`/v1/jobs/${jobId}`);
      if (record.ok) showRecord(record.data);
      refreshCurve();
    });
  }

  function showAnswer(answer) {
    const error = $("action-error");
    error.classList.toggle("hidden", answer.ok);
    if (!answer.ok) error.textContent = gradq.detailText(answer.data.detail ?? answer.data);
    return answer.ok;
  }

  // One click cancels at once (scripts and the checks click once and wait for
  // "cancelled"); a cancel is undone by Resume, which continues from the job's checkpoint.
  $("cancel").addEventListener("click", async () => {
    $("cancel").disabled = true;
    const answer = await gradq.api(`/v1/jobs/${jobId}/cancel`, { method: "POST" });
    if (showAnswer(answer)) showRecord(answer.data);
    else showRecord({ status });  // the button comes back
  });

  // a resumed job starts a new attempt: the page is rendered anew (timeline, curve, live feed)
  $("resume").addEventListener("click", async () => {
    $("resume").disabled = true;
    const answer = await gradq.api(`/v1/jobs/${jobId}/resume`, { method: "POST", json: {} });
    if (showAnswer(answer)) location.reload();
    else { $("resume").disabled = false; checkResumable(); }
  });

  $("copy-spec").addEventListener("click", async () => {
    const text = $("spec").textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {  // no clipboard API (plain http on another host): select it for Ctrl-C
      const range = document.createRange();
      range.selectNodeContents($("spec"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
    }
    $("copy-spec").textContent = "Copied";
    setTimeout(() => { $("copy-spec").textContent = "Copy"; }, 1500);
  });

  // the server put the first (downsampled) curve into the page: draw it, then go live
  applyCurve(JSON.parse($("initial-metrics").textContent), true);
  follow();
})();
