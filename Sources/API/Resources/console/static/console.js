// Conveniences only: every page works without this file.
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (button && navigator.clipboard) {
    navigator.clipboard.writeText(button.dataset.copy || "").then(() => {
      button.setAttribute("aria-live", "polite");
      button.textContent = "✓";
    });
  }
});
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) event.preventDefault();
});
