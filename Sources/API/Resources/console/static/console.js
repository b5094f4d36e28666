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
// A chosen CSV file is read into the form's text box, which the server parses (import without a multipart upload).
document.addEventListener("change", (event) => {
  const input = event.target;
  if (!input.dataset || !input.dataset.fills || !input.files || !input.files[0]) return;
  // Japanese Excel saves CSV in Shift_JIS: a file that is not valid UTF-8 is read as Shift_JIS.
  input.files[0].arrayBuffer().then((bytes) => {
    let text;
    try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch (e) { text = new TextDecoder("shift_jis").decode(bytes); }
    document.getElementById(input.dataset.fills).value = text;
  });
});
