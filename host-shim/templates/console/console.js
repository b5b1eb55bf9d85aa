// The console's only script, and every page works without it. It does two things:
// re-describes a dialog when a choice that others depend on changes, and keeps the
// progress bars and states of "Jobs and transfers" and "Archives" moving.
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

// Live rows: a table marked data-live names a JSON answer whose `rows` each name a
// <tr data-row> of the page (a transfer, a job, an archive). Poll it, move each row's
// bar, state badge and [data-role] texts, and reload the page when a row appears that
// is not on it yet or one enters or leaves "failed" (its buttons change).
const live = document.querySelector("[data-live]");
if (live) {
  const url = live.getAttribute("data-live");
  // Moves one row; whether the page must be drawn again for it.
  const move = (row, item) => {
    const bar = row.querySelector("progress");
    if (bar && item.total !== undefined) {
      bar.max = item.total;
      bar.value = item.done;
    }
    for (const [role, text] of Object.entries(item.texts || {})) {
      const place = row.querySelector(`[data-role="${role}"]`);
      if (place) place.textContent = text;
    }
    const state = row.querySelector('[data-role="state"]');
    const was = state.getAttribute("data-state");
    state.setAttribute("data-state", item.state);
    state.textContent = item.label || item.state;
    state.className = `badge state-${item.state}`;
    return was !== item.state && (item.state === "failed" || was === "failed");
  };
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
    for (const item of data.rows) {
      const row = document.querySelector(`tr[data-row="${CSS.escape(item.row)}"]`);
      if (!row || move(row, item)) stale = true;
    }
    if (stale) location.reload();
  };
  setInterval(tick, 500);
}
