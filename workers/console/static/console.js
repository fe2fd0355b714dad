// The console's only script, written by hand (no htmx: it could not be vendored here), and optional:
// every page reads and works without it. It asks before a change marked data-confirm, and
// refreshes the overview's figures in place.
"use strict";
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
const refreshed = document.querySelector("[data-refresh]");
if (refreshed) {
  const seconds = Number(refreshed.dataset.refresh) * 1000;
  setInterval(async () => {
    const answer = await fetch(window.location.href, { credentials: "same-origin" });
    if (!answer.ok) return;
    const fresh = new DOMParser().parseFromString(await answer.text(), "text/html").querySelector("[data-refresh]");
    if (fresh) refreshed.replaceChildren(...fresh.childNodes);
  }, seconds);
}
