// masto.js against Freehold's Mastodon API: the scenario of test_mastodon_py.py, from Node.
// Usage: node scenario.mjs BASE_URL SESSION_TOKEN_A SESSION_TOKEN_B
// (the session tokens stand for two users logged in to the web UI, who approve the consent
// page). Prints one JSON line of what it saw; exits non-zero on the first failed check.
import { createOAuthAPIClient, createRestAPIClient } from "masto";
import assert from "node:assert/strict";

const [base, sessionA, sessionB] = process.argv.slice(2);
const REDIRECT = "freeholdjs://oauth";
const SCOPES = "read write follow push";
const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478" +
    "9c63f80f00000101000518d84e0000000049454e44ae426082", "hex");

async function login(session) {
  const anon = createRestAPIClient({ url: base });
  const app = await anon.v1.apps.create({ clientName: "masto.js test", redirectUris: REDIRECT,
                                          scopes: SCOPES });
  const url = `${base}/oauth/authorize?` + new URLSearchParams({
    client_id: app.clientId, redirect_uri: REDIRECT, response_type: "code", scope: SCOPES });
  const page = await fetch(url, { headers: { cookie: `fh_session=${session}` } });
  assert.equal(page.status, 200);
  const html = await page.text();
  const csrfCookie = /fh_csrf=([^;]+)/.exec(page.headers.get("set-cookie"))[1];
  const form = new URLSearchParams();
  for (const m of html.matchAll(/<input type="hidden" name="([a-z_]+)" value="([^"]*)"/g)) {
    form.set(m[1], m[2].replaceAll("&amp;", "&").replaceAll("&#39;", "'"));
  }
  form.set("decision", "approve");
  const done = await fetch(`${base}/oauth/authorize`, {
    method: "POST", body: form, redirect: "manual",
    headers: { cookie: `fh_session=${session}; fh_csrf=${csrfCookie}` } });
  assert.equal(done.status, 302);
  const code = new URL(done.headers.get("location")).searchParams.get("code");
  const oauth = createOAuthAPIClient({ url: base });
  const token = await oauth.token.create({ grantType: "authorization_code", code,
    clientId: app.clientId, clientSecret: app.clientSecret, redirectUri: REDIRECT,
    scope: SCOPES });
  return createRestAPIClient({ url: base, accessToken: token.accessToken });
}

const a = await login(sessionA);
const b = await login(sessionB);
const me = await a.v1.accounts.verifyCredentials();
const instance = await a.v2.instance.fetch();
assert.match(instance.version, /^4\.3\.0 \(compatible; Freehold/);
await b.v1.accounts.$select(me.id).follow();

const media = await a.v2.media.create({ file: new Blob([PNG], { type: "image/png" }),
                                        description: "a red dot" });
assert.equal(media.type, "image");
const tag = `mjs${Date.now().toString(36)}`;
const first = await a.v1.statuses.create({ status: `hello from masto.js #${tag}`,
                                           mediaIds: [media.id] });
assert.equal(first.mediaAttachments.length, 1);
const posts = [];
for (let i = 0; i < 4; i++) posts.push(await a.v1.statuses.create({ status: `js post ${i}` }));
const reply = await b.v1.statuses.create({ status: "a reply", inReplyToId: first.id });
assert.equal(reply.inReplyToId, first.id);
const fav = await b.v1.statuses.$select(first.id).favourite();
assert.equal(fav.favourited, true);
const boost = await b.v1.statuses.$select(first.id).reblog();
assert.equal(boost.reblog.id, first.id);

// the home feed is fanned out by a worker: wait for it (bounded)
const expectTop = [boost.id, reply.id];
let top = [];
for (let i = 0; i < 100; i++) {
  top = (await b.v1.timelines.home.list({ limit: 2 })).map((s) => s.id);
  if (top.join() === expectTop.join()) break;
  await new Promise((r) => setTimeout(r, 200));
}
assert.deepEqual(top, expectTop);
const pages = [];
for await (const page of b.v1.timelines.home.list({ limit: 2 })) {
  pages.push(page.map((s) => s.id));
  if (pages.length === 3) break;
}
const newest = posts.map((p) => p.id).reverse();
assert.deepEqual(pages, [expectTop, newest.slice(0, 2), newest.slice(2, 4)]);

let notes = [];
for (let i = 0; i < 100 && notes.length < 4; i++) {
  notes = await a.v1.notifications.list();
  if (notes.length < 4) await new Promise((r) => setTimeout(r, 200));
}
const types = new Set(notes.map((n) => n.type));
for (const t of ["follow", "favourite", "reblog", "mention"]) assert.ok(types.has(t), t);
const found = await b.v2.search.list({ q: `#${tag}` });
assert.ok(found.statuses.some((s) => s.id === first.id));
const accounts = await b.v2.search.list({ q: me.username, type: "accounts" });
assert.ok(accounts.accounts.some((x) => x.id === me.id));
const report = await b.v1.reports.create({ accountId: me.id, statusIds: [first.id],
                                           comment: "from masto.js", category: "spam" });
assert.equal(report.category, "spam");
console.log(JSON.stringify({ ok: true, account: me.username, pages, notifications: [...types] }));
