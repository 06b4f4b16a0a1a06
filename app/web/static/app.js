// Freehold web UI: progressive enhancements only (every page works without JavaScript).
(function () {
  "use strict";
  // Install the service worker (root scope): shell cached, pages always from the network.
  if ("serviceWorker" in navigator) {
    window.addEventListener("load", function () {
      navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {});
    });
  }
  // Character counter in Unicode code points (what the server counts), not UTF-16 units.
  function codePoints(s) { return Array.from(s.replace(/\r\n/g, "\n").trim()).length; }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("textarea[data-max]").forEach(function (ta) {
      var max = parseInt(ta.getAttribute("data-max"), 10);
      var count = ta.form && ta.form.querySelector(".count");
      if (!count) { return; }
      function update() {
        var left = max - codePoints(ta.value);
        count.textContent = String(left);
        count.classList.toggle("over", left < 0);
      }
      ta.addEventListener("input", update);
      update();
    });
    // Ask before destructive actions.
    document.querySelectorAll("form.confirm").forEach(function (f) {
      f.addEventListener("submit", function (ev) {
        if (!window.confirm(f.getAttribute("data-confirm") || "Are you sure?")) { ev.preventDefault(); }
      });
    });
    // At most 4 images per post, said before the upload starts.
    document.querySelectorAll("input[type=file][name=images]").forEach(function (inp) {
      inp.addEventListener("change", function () {
        inp.setCustomValidity(inp.files.length > 4 ? "At most 4 images per post" : "");
        inp.reportValidity();
      });
    });
  });
})();
