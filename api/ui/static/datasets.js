// Data set upload with a progress bar (XMLHttpRequest: fetch() reports no upload progress).
"use strict";
(() => {
  const form = document.getElementById("upload-form");
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");

  // a refused upload hides the full bar: it showed bytes sent, and nothing was stored
  function refused(message) {
    bar.classList.add("hidden");
    status.textContent = message;
    status.className = "small error";
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    for (const key of ["label_column", "task"]) if (!data.get(key)) data.delete(key);
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/datasets");
    if (gradq.csrf) request.setRequestHeader("X-CSRF-Token", gradq.csrf);
    // a new attempt starts from an empty bar and a neutral status line
    bar.firstElementChild.style.width = "0%";
    bar.classList.remove("hidden");
    status.className = "small";
    request.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      const share = e.loaded / e.total;
      bar.firstElementChild.style.width = (100 * share).toFixed(1) + "%";
      status.textContent = `uploading… ${(100 * share).toFixed(0)}%`;
    };
    request.onload = () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
      if (request.status === 201) {
        status.textContent = "stored as " + body.id;
        location.href = "/ui/datasets/" + body.id;
      } else {
        refused(`HTTP ${request.status}: ${gradq.detailText(body.detail ?? request.responseText)}`);
      }
    };
    request.onerror = () => refused("upload failed: network error");
    request.send(data);
  });
})();
