// The console's only script, and every page works without it. It does two things:
// re-describes a dialog when a choice that others depend on changes, and keeps the
// progress bars and states of "Jobs and transfers" moving.
"use strict";

document.documentElement.classList.add("js");

// A choice marked data-refresh: submit the form with the "Update choices" button,
// which asks the connector to describe the dialog again with the values so far.
document.addEventListener("change", (event) => {
  const field = event.target;
  if (!(field instanceof HTMLSelectElement) || !field.hasAttribute("data-refresh")) return;
  const refresh = field.form && field.form.querySelector('button[value="refresh"]');
  if (refresh) field.form.requestSubmit(refresh);
});

// Live progress: poll the lists, update the rows shown, and reload the page when a
// row appears that is not on it yet or a job ends (its buttons change).
const live = document.querySelector("[data-live]");
if (live) {
  const url = live.getAttribute("data-live");
  const tick = async () => {
    let data;
    try {
      const answer = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (!answer.ok) return;
      data = await answer.json();
    } catch (_) {
      return;
    }
    let stale = false;
    for (const t of data.transfers) {
      const row = document.querySelector(`tr[data-transfer="${CSS.escape(t.key)}"]`);
      if (!row) { stale = true; continue; }
      const bar = row.querySelector("progress");
      bar.max = t.total;
      bar.value = t.done;
      row.querySelector(".amount").textContent = t.amount;
      const state = row.querySelector('[data-role="state"]');
      state.textContent = t.state;
      state.className = `badge state-${t.state}`;
    }
    for (const j of data.jobs) {
      const row = document.querySelector(`tr[data-job="${CSS.escape(j.id)}"]`);
      if (!row) { stale = true; continue; }
      const state = row.querySelector('[data-role="state"]');
      if (state.textContent !== j.state && (j.state === "failed" || state.textContent === "failed")) stale = true;
      state.textContent = j.state;
      state.className = `badge state-${j.state}`;
      row.querySelector('[data-role="text"]').textContent = j.text;
      row.querySelector('[data-role="attempt"]').textContent = j.attempt;
    }
    if (stale) location.reload();
  };
  setInterval(tick, 500);
}
