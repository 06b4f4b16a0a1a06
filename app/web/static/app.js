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
    // Sign-up: ask whether a proof of work is required now; if so, solve it before sending.
    document.querySelectorAll("form[data-proof]").forEach(proveOnSubmit);
    // At most 4 images per post, said before the upload starts.
    document.querySelectorAll("input[type=file][name=images]").forEach(function (inp) {
      inp.addEventListener("change", function () {
        inp.setCustomValidity(inp.files.length > 4 ? "At most 4 images per post" : "");
        inp.reportValidity();
      });
    });
  });

  // Proof of work for sign-up bursts (app/services/signup_proof.py): several workers share the
  // counters; the first to find one wins. Any failure sends the form as it is: the server then
  // says what is missing (a page without a proof works while none is required).
  function solve(worker, challenge, bits) {
    return new Promise(function (resolve, reject) {
      var n = Math.max(1, Math.min(navigator.hardwareConcurrency || 2, 8));
      var pool = [];
      function stop() { pool.forEach(function (w) { w.terminate(); }); }
      for (var i = 0; i < n; i++) {
        var w = new Worker(worker);
        w.onmessage = function (ev) { stop(); resolve(ev.data.counter); };
        w.onerror = function (err) { stop(); reject(err); };
        w.postMessage({ challenge: challenge, bits: bits, start: i, step: n });
        pool.push(w);
      }
    });
  }

  function proveOnSubmit(form) {
    var status = form.querySelector(".proof-status");
    var button = form.querySelector("button[type=submit]");
    var sending = false;
    function send() { sending = true; form.submit(); }
    form.addEventListener("submit", function (ev) {
      if (sending || !window.fetch || !window.Worker) { return; }
      ev.preventDefault();
      button.disabled = true;
      fetch(form.getAttribute("data-proof"), { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (doc) {
          if (!doc || !doc.required) { return null; }
          status.hidden = false;
          status.textContent = "Many people are signing up from your network: " +
            "your browser is proving its effort (a second or so)…";
          var started = Date.now();
          return solve(form.getAttribute("data-proof-worker"), doc.challenge, doc.difficulty)
            .then(function (counter) {
              form.elements.pow_challenge.value = doc.challenge;
              form.elements.pow_counter.value = String(counter);
              form.setAttribute("data-proof-ms", String(Date.now() - started));
            });
        })
        .catch(function () { return null; })
        .then(send);
    });
  }
})();
