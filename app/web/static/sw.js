// Freehold service worker (scope "/"). Caches the app shell only: CSS, JS, icons and the
// offline page. HTML pages belong to a logged-in user: they always come from the network and
// are never stored; when the network is down a navigation gets the cached offline page.
"use strict";
const VERSION = "__VERSION__";
const CACHE = "freehold-shell-" + VERSION;
const SHELL = __SHELL__;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("freehold-shell-") && k !== CACHE)
                                      .map((k) => caches.delete(k))))
      .then(() => self.clients.claim()));
});

function isShell(url) {
  return url.origin === self.location.origin &&
    (url.pathname.startsWith("/static/") || url.pathname.startsWith("/icons/") ||
     url.pathname === "/offline");
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") { return; }
  const url = new URL(req.url);
  if (req.mode === "navigate") {
    // network only; the offline page when there is no network
    event.respondWith(fetch(req).catch(() => caches.match("/offline")));
    return;
  }
  if (isShell(url)) {
    event.respondWith(caches.match(req).then((hit) => hit || fetch(req)));
  }
  // everything else (API, media, pages): straight to the network, nothing stored
});
