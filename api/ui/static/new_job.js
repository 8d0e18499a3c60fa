// The spec editor: examples to start from, submit, and the API's 422 errors next to the spec.
"use strict";
(() => {
  const editor = document.getElementById("spec-editor");
  const errors = document.getElementById("spec-errors");
  const hint = document.getElementById("no-errors");
  const examples = JSON.parse(document.getElementById("examples").textContent);

  document.getElementById("example").addEventListener("change", (e) => {
    if (examples[e.target.value]) editor.value = examples[e.target.value];
    showErrors([]);
  });

  function showErrors(items) {
    errors.replaceChildren(...items.map(([where, what]) => {
      const li = document.createElement("li");
      const field = document.createElement("code");
      field.textContent = where;
      li.append(field, " " + what);
      return li;
    }));
    hint.classList.toggle("hidden", items.length > 0);
    editor.classList.toggle("invalid", items.length > 0);
  }

  document.getElementById("spec-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    let spec;
    try {
      spec = JSON.parse(editor.value);
    } catch (error) {
      showErrors([["spec", "not valid JSON: " + error.message]]);
      return;
    }
    const submit = document.getElementById("submit");
    submit.disabled = true;
    try {
      const answer = await gradq.api("/v1/jobs", { method: "POST", json: spec });
      if (answer.ok) {
        location.href = "/ui/jobs/" + answer.data.id;
        return;
      }
      const detail = answer.data && answer.data.detail;
      if (Array.isArray(detail)) showErrors(detail.map((d) => [gradq.where(d.loc), d.msg]));
      else showErrors([[`HTTP ${answer.status}`, gradq.detailText(detail ?? answer.data)]]);
    } finally {
      submit.disabled = false;
    }
  });
})();
