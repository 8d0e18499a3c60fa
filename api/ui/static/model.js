// The model page: a drawing canvas (pointer and touch) whose PNG goes through the same image
// upload path as a file, so it is downsampled exactly like an uploaded picture; bars per class.
"use strict";
(() => {
  const root = document.getElementById("model");
  const modelId = root.dataset.modelId;
  const canvas = document.getElementById("digit-canvas");
  const pen = canvas.getContext("2d");
  const bars = [...document.querySelectorAll("#class-bars .class-bar")];
  const STROKE = 22;  // px on the 280 px canvas: a pen stroke of the digits' 8x8 scale
  let last = null;

  function clear() {
    pen.fillStyle = "#000";
    pen.fillRect(0, 0, canvas.width, canvas.height);
    document.getElementById("prediction").textContent = "";
    bars.forEach((bar) => { bar.querySelector(".bar span").style.width = "0%"; bar.querySelector(".p").textContent = "—"; });
  }

  function at(event) {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
  }

  function line(from, to) {
    pen.strokeStyle = "#fff";
    pen.lineWidth = STROKE;
    pen.lineCap = "round";
    pen.lineJoin = "round";
    pen.beginPath();
    pen.moveTo(...from);
    pen.lineTo(...to);
    pen.stroke();
  }

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    last = at(event);
    line(last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const point = at(event);
    line(last, point);
    last = point;
  });
  const end = () => {
    if (!last) return;
    last = null;
    canvas.toBlob((blob) => predict(blob, "drawing.png"), "image/png");
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  // Browsers without pointer events (old mobile Safari) still get touch drawing.
  if (!window.PointerEvent) {
    const touch = (e) => ({ clientX: e.touches[0].clientX, clientY: e.touches[0].clientY });
    canvas.addEventListener("touchstart", (e) => { e.preventDefault(); last = at(touch(e)); line(last, last); });
    canvas.addEventListener("touchmove", (e) => { e.preventDefault(); const p = at(touch(e)); line(last, p); last = p; });
    canvas.addEventListener("touchend", end);
  }

  let pending = 0;
  async function predict(blob, name) {
    const ticket = ++pending;  // only the latest stroke's answer is shown
    const form = new FormData();
    form.append("file", blob, name);
    const answer = await gradq.api(`/v1/models/${modelId}/predict`, { method: "POST", body: form });
    if (ticket !== pending) return;
    const error = document.getElementById("predict-error");
    if (!answer.ok) {
      error.textContent = gradq.detailText(answer.data.detail);
      error.classList.remove("hidden");
      return;
    }
    error.classList.add("hidden");
    const data = answer.data;
    const label = data.labels ? data.labels[0] : String(data.predictions[0]);
    document.getElementById("prediction").textContent = label;
    const probabilities = data.probabilities[0];
    bars.forEach((bar, i) => {
      const p = probabilities[i] ?? 0;
      bar.querySelector(".bar span").style.width = (100 * p).toFixed(1) + "%";
      bar.querySelector(".p").textContent = (100 * p).toFixed(1) + "%";
      bar.classList.toggle("best", i === data.predictions[0]);
    });
  }

  document.getElementById("clear-canvas").addEventListener("click", clear);
  document.getElementById("image-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) predict(file, file.name);
  });
  clear();
})();
