// The jobs table: tick rows to compare them, and keep rows of unfinished jobs live (polling).
"use strict";
(() => {
  const body = document.getElementById("job-rows");
  const button = document.getElementById("compare");
  const MAX_COMPARED = 10;
  const POLL_MS = 1000;

  function picked() {
    return [...body.querySelectorAll("input.pick:checked")].map((box) => box.value);
  }

  function updateButton() {
    const ids = picked();
    document.getElementById("picked").textContent = ids.length;
    button.disabled = ids.length < 1 || ids.length > MAX_COMPARED;
    button.title = ids.length > MAX_COMPARED ? `at most ${MAX_COMPARED} jobs` : "";
  }

  body.addEventListener("change", updateButton);
  button.addEventListener("click", () => {
    location.href = "/ui/compare?jobs=" + picked().join(",");
  });

  // One request refreshes every unfinished row: the server renders the same <tr> markup.
  async function poll() {
    const active = [...body.querySelectorAll('tr[data-active="true"]')].map((r) => r.dataset.jobId);
    if (active.length && !document.hidden) {
      const answer = await fetch("/ui/jobs/rows?ids=" + active.join(","), { credentials: "same-origin" });
      if (answer.ok) {
        const holder = document.createElement("tbody");
        holder.innerHTML = await answer.text();
        const checked = new Set(picked());
        for (const row of holder.querySelectorAll("tr[data-job-id]")) {
          const old = body.querySelector(`tr[data-job-id="${row.dataset.jobId}"]`);
          if (!old) continue;
          row.querySelector("input.pick").checked = checked.has(row.dataset.jobId);
          old.replaceWith(row);
        }
      }
    }
    if (body.querySelector('tr[data-active="true"]')) setTimeout(poll, POLL_MS);
  }
  setTimeout(poll, POLL_MS);
  updateButton();
})();
