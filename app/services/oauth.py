"""OAuth 2 for the Mastodon client API: applications, authorization codes (PKCE S256), access
and refresh tokens, scopes.

- An application (POST /api/v1/apps) gets a public `client_id` and a `client_secret`; only the
  secret's sha256 is kept. Redirect URIs may be web URLs, custom schemes of native apps
  (`mastodon://…`, `oauth2redirect://…`) or `urn:ietf:wg:oauth:2.0:oob` (the code is shown).
- An authorization code lives 10 minutes in Redis (by its sha256), is used once (GETDEL) and
  remembers the client, account, scopes, redirect URI and PKCE challenge it was made for.
- Access tokens (prefix TOKEN_PREFIX, which the app's dispatcher routes to the Mastodon API) and
  refresh tokens are kept as sha256 digests in PostgreSQL; Redis caches token → grant for an
  hour, dropped on revocation. Tokens do not expire (as Mastodon's); a refresh rotates both.
- Scopes: `read`, `write`, `follow`, `push`, `profile` and the granular `read:…`/`write:…` ones;
  a route needs one granular scope, which its top scope (or `follow`, for follows, blocks and
  mutes) covers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from freehold.app.context import Ctx
from freehold.app.ids import new_id
from freehold.app.services import auth
from freehold.app.services.accounts import oauth_cache_key
from freehold.app.services.errors import Forbidden, Invalid, ServiceError, Unauthorized

TOKEN_PREFIX = "fhoa_"  # access tokens: the app sends requests carrying one to the Mastodon API
REFRESH_PREFIX = "fhor_"
OOB = "urn:ietf:wg:oauth:2.0:oob"
CODE_TTL_S = 600
CACHE_TTL_S = 3600
TOP_SCOPES = ("read", "write", "follow", "push", "profile")
GRANULAR = {
    "read": ("accounts", "blocks", "bookmarks", "favourites", "filters", "follows", "lists",
             "mutes", "notifications", "search", "statuses"),
    "write": ("accounts", "blocks", "bookmarks", "conversations", "favourites", "filters",
              "follows", "lists", "media", "mutes", "notifications", "reports", "statuses"),
}
ALL_SCOPES = (*TOP_SCOPES, *(f"{top}:{s}" for top, subs in GRANULAR.items() for s in subs))
# what the legacy `follow` scope covers
FOLLOW_COVERS = frozenset({"read:follows", "write:follows", "read:blocks", "write:blocks",
                           "read:mutes", "write:mutes"})
SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
BAD_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "blob", "about"})


class OAuthError(ServiceError):
    """An error of the OAuth endpoints, answered as RFC 6749 says: {error, error_description}."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.code = code
        self.status = status

    def to_json(self) -> dict[str, object]:
        return {"error": self.code, "error_description": self.message}


@dataclass(frozen=True)
class Grant:
    """What a valid access token allows: its account (None: an app token), scopes, app."""

    token_id: int
    app_id: int
    account_id: int | None
    scopes: frozenset[str]

    def allows(self, needed: str) -> bool:
        return covers(self.scopes, needed)


def covers(granted: frozenset[str] | set[str], needed: str) -> bool:
    if needed in granted or needed.split(":", 1)[0] in granted:
        return True
    return needed in FOLLOW_COVERS and "follow" in granted


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_scopes(raw: str | list[str] | None, default: str = "read") -> list[str]:
    """Scopes from a space- (or plus-) separated string or a list; Invalid on an unknown one."""
    if raw is None or raw == "" or raw == []:
        raw = default
    parts = raw if isinstance(raw, list) else re.split(r"[ +]+", str(raw))
    out: dict[str, None] = {}
    for p in parts:
        p = str(p).strip()
        if not p:
            continue
        if p not in ALL_SCOPES:
            raise OAuthError("invalid_scope", f"unknown scope {p[:40]!r}: use "
                             "read, write, follow, push or a granular read:/write: scope")
        out[p] = None
    if not out:
        raise OAuthError("invalid_scope", "no scope given: use read, write, follow or push")
    return list(out)


def check_redirect_uri(uri: str) -> str:
    if not isinstance(uri, str) or not uri.strip() or len(uri) > 2000:
        raise Invalid("redirect_uris: give one or more absolute URIs, or " + OOB,
                      field="redirect_uris")
    uri = uri.strip()
    if uri == OOB:
        return uri
    m = SCHEME_RE.match(uri)
    scheme = m.group(0)[:-1].lower() if m else ""
    rest = uri[len(scheme) + 1:]
    if not m or scheme in BAD_SCHEMES or not rest or "#" in uri or any(c in uri for c in " \r\n"):
        raise Invalid(f"redirect_uris: {uri[:80]!r} must be an absolute URI without a fragment "
                      f"(https://…, a custom scheme such as myapp://callback, or {OOB})",
                      field="redirect_uris")
    if scheme in ("http", "https") and not re.match(r"^//[^/?#\s]+", rest):
        raise Invalid(f"redirect_uris: {uri[:80]!r} has no host", field="redirect_uris")
    return uri


async def register_app(ctx: Ctx, name: Any, redirect_uris: Any, scopes: Any = None,
                       website: Any = None) -> dict[str, Any]:
    """A new application; returns it with its client_id and client_secret (shown only now)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise Invalid("client_name: give the application's name (1 to 200 characters)",
                      field="client_name")
    if isinstance(redirect_uris, str):
        uris = [u for u in re.split(r"[\n ]+", redirect_uris) if u]
    elif isinstance(redirect_uris, list):
        uris = redirect_uris
    else:
        uris = []
    if not uris or len(uris) > 20:
        raise Invalid(f"redirect_uris: give 1 to 20 URIs (or {OOB})", field="redirect_uris")
    uris = [check_redirect_uri(u) for u in uris]
    if website is not None and (not isinstance(website, str) or len(website) > 2000):
        raise Invalid("website: a URL of at most 2000 characters", field="website")
    try:
        scope_list = parse_scopes(scopes)
    except OAuthError as exc:
        raise Invalid(f"scopes: {exc.message}", field="scopes") from None
    client_id, secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    app_id = new_id()
    await ctx.db.execute(
        "INSERT INTO oauth_apps (id, client_id, secret_hash, name, website, redirect_uris,"
        " scopes) VALUES ($1, $2, $3, $4, $5, $6, $7)", app_id, client_id, digest(secret),
        name.strip(), website or None, uris, scope_list)
    return {**app_json(app_id, name.strip(), website or None, uris, scope_list),
            "client_id": client_id, "client_secret": secret, "client_secret_expires_at": 0}


def app_json(app_id: int, name: str, website: str | None, uris: list[str], scopes: list[str]
             ) -> dict[str, Any]:
    return {"id": str(app_id), "name": name, "website": website, "scopes": list(scopes),
            "redirect_uri": "\n".join(uris), "redirect_uris": list(uris), "vapid_key": ""}


async def get_app(ctx: Ctx, client_id: Any) -> Any:
    """The application row of a client_id, or None."""
    if not isinstance(client_id, str) or not client_id or len(client_id) > 200:
        return None
    return await ctx.db.fetchrow(
        "SELECT id, client_id, secret_hash, name, website, redirect_uris, scopes"
        " FROM oauth_apps WHERE client_id = $1", client_id)


async def app_of(ctx: Ctx, app_id: int) -> dict[str, Any]:
    r = await ctx.db.fetchrow("SELECT id, name, website, redirect_uris, scopes FROM oauth_apps"
                              " WHERE id = $1", app_id)
    if r is None:
        raise Unauthorized("The access token is invalid")
    return app_json(r["id"], r["name"], r["website"], r["redirect_uris"], r["scopes"])


async def client(ctx: Ctx, client_id: Any, client_secret: Any) -> Any:
    """The application whose id and secret these are; OAuthError invalid_client otherwise."""
    row = await get_app(ctx, client_id)
    ok = row is not None and isinstance(client_secret, str) and hmac.compare_digest(
        bytes(row["secret_hash"]), digest(client_secret))
    if not ok:
        raise OAuthError("invalid_client", "Client authentication failed due to unknown "
                         "client, no client authentication included, or unsupported "
                         "authentication method.", 401)
    return row


@dataclass(frozen=True)
class AuthRequest:
    """A checked GET /oauth/authorize request."""

    app_id: int
    app_name: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    state: str | None
    code_challenge: str | None


async def check_authorize(ctx: Ctx, params: dict[str, Any]) -> AuthRequest:
    """The authorization request of `params` (client, redirect URI, scopes, PKCE), checked."""
    row = await get_app(ctx, params.get("client_id"))
    if row is None:
        raise OAuthError("invalid_client", "unknown client_id: register the app first "
                         "(POST /api/v1/apps)")
    uri = params.get("redirect_uri") or (row["redirect_uris"][0]
                                         if len(row["redirect_uris"]) == 1 else None)
    if uri not in row["redirect_uris"]:
        raise OAuthError("invalid_request", "redirect_uri is not one the app registered")
    if params.get("response_type", "code") != "code":
        raise OAuthError("unsupported_response_type", "response_type must be code")
    scopes = parse_scopes(params.get("scope") or params.get("scopes"))
    if not set(scopes) <= set(row["scopes"]):
        raise OAuthError("invalid_scope", "scope asks for more than the app registered: "
                         + " ".join(row["scopes"]))
    challenge = params.get("code_challenge") or None
    if challenge is not None:
        if params.get("code_challenge_method", "S256") != "S256":
            raise OAuthError("invalid_request", "code_challenge_method must be S256")
        if not re.fullmatch(r"[A-Za-z0-9_-]{43}", str(challenge)):
            raise OAuthError("invalid_request", "code_challenge: the base64url SHA-256 of the "
                             "verifier (43 characters)")
    state = params.get("state")
    return AuthRequest(row["id"], row["name"], row["client_id"], uri, scopes,
                       str(state)[:1000] if state is not None else None, challenge)


def _code_key(code: str) -> str:
    return f"oauth:code:{digest(code).hex()}"


async def make_code(ctx: Ctx, req: AuthRequest, account_id: int) -> str:
    code = secrets.token_urlsafe(32)
    doc = {"app": req.app_id, "account": account_id, "scopes": req.scopes,
           "redirect_uri": req.redirect_uri, "challenge": req.code_challenge}
    await ctx.redis.set(_code_key(code), orjson.dumps(doc), ex=CODE_TTL_S)
    return code


def _invalid_grant(why: str) -> OAuthError:
    return OAuthError("invalid_grant", "The provided authorization grant is invalid, expired, "
                      f"revoked, does not match the redirection URI used in the authorization "
                      f"request, or was issued to another client ({why}).")


async def exchange_code(ctx: Ctx, app: Any, code: Any, redirect_uri: Any, verifier: Any
                        ) -> dict[str, Any]:
    if not isinstance(code, str) or not code or len(code) > 200:
        raise _invalid_grant("no code")
    raw = await ctx.redis.getdel(_code_key(code))  # once only
    if raw is None:
        raise _invalid_grant("unknown or used code")
    doc = orjson.loads(raw)
    if doc["app"] != app["id"]:
        raise _invalid_grant("another client's code")
    if redirect_uri is not None and redirect_uri != doc["redirect_uri"]:
        raise _invalid_grant("redirect_uri differs")
    if doc["challenge"] is not None:
        if not isinstance(verifier, str) or not 43 <= len(verifier) <= 128:
            raise _invalid_grant("code_verifier missing")
        made = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if not hmac.compare_digest(made.rstrip(b"=").decode(), doc["challenge"]):
            raise _invalid_grant("code_verifier does not match the challenge")
    return await issue(ctx, app["id"], doc["account"], doc["scopes"], refresh=True)


async def client_credentials(ctx: Ctx, app: Any, scope: Any) -> dict[str, Any]:
    scopes = parse_scopes(scope)
    if not set(scopes) <= set(app["scopes"]):
        raise OAuthError("invalid_scope", "The requested scope is invalid, unknown, or "
                         "malformed.")
    return await issue(ctx, app["id"], None, scopes, refresh=False)


async def refresh(ctx: Ctx, app: Any, refresh_token: Any, scope: Any) -> dict[str, Any]:
    """New access and refresh tokens for a refresh token (rotated: the old pair ends)."""
    if not isinstance(refresh_token, str) or not refresh_token.startswith(REFRESH_PREFIX):
        raise _invalid_grant("no refresh token")
    row = await ctx.db.fetchrow(
        "DELETE FROM oauth_tokens WHERE refresh_hash = $1 AND app_id = $2"
        " RETURNING token_hash, account_id, scopes", digest(refresh_token), app["id"])
    if row is None:
        raise _invalid_grant("unknown refresh token")
    await ctx.redis.delete(oauth_cache_key(bytes(row["token_hash"])))
    scopes = list(row["scopes"])
    if scope:
        asked = parse_scopes(scope)
        if not set(asked) <= set(scopes):
            raise OAuthError("invalid_scope", "a refresh cannot widen the scopes")
        scopes = asked
    return await issue(ctx, app["id"], row["account_id"], scopes, refresh=True)


async def issue(ctx: Ctx, app_id: int, account_id: int | None, scopes: list[str], *,
                refresh: bool) -> dict[str, Any]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    rtoken = REFRESH_PREFIX + secrets.token_urlsafe(32) if refresh else None
    await ctx.db.execute(
        "INSERT INTO oauth_tokens (id, token_hash, refresh_hash, app_id, account_id, scopes)"
        " VALUES ($1, $2, $3, $4, $5, $6)", new_id(), digest(token),
        digest(rtoken) if rtoken else None, app_id, account_id, scopes)
    doc: dict[str, Any] = {"access_token": token, "token_type": "Bearer",
                           "scope": " ".join(scopes), "created_at": int(time.time())}
    if rtoken:
        doc["refresh_token"] = rtoken
    return doc


async def revoke(ctx: Ctx, app: Any, token: Any) -> None:
    """End an access (or refresh) token of this client; unknown tokens are ignored (RFC 7009)."""
    if not isinstance(token, str) or not token or len(token) > 200:
        return
    h = digest(token)
    row = await ctx.db.fetchrow(
        "DELETE FROM oauth_tokens WHERE (token_hash = $1 OR refresh_hash = $1) AND app_id = $2"
        " RETURNING token_hash", h, app["id"])
    if row is None:
        if await ctx.db.fetchval("SELECT true FROM oauth_tokens WHERE token_hash = $1"
                                 " OR refresh_hash = $1", h):
            raise OAuthError("unauthorized_client",
                             "You are not authorized to revoke this token", 403)
        return
    await ctx.redis.delete(oauth_cache_key(bytes(row["token_hash"])))


async def resolve(ctx: Ctx, token: str | None) -> Grant | None:
    """The grant of an access token, or None (Redis first: one round trip, shared with
    concurrent requests' reads)."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    h = digest(token)
    key = oauth_cache_key(h)
    cached = (await ctx.reads([("get", key)]))[0]
    if cached:
        return _parse_grant(cached)
    row = await ctx.db.fetchrow(
        "SELECT t.id, t.app_id, t.account_id, t.scopes, a.last_active_at FROM oauth_tokens t"
        " LEFT JOIN accounts a ON a.id = t.account_id WHERE t.token_hash = $1", h)
    if row is None:
        return None
    if row["account_id"] is not None:
        await auth.mark_active(ctx, row["account_id"], row["last_active_at"])
    raw = f"{row['id']}|{row['app_id']}|{row['account_id'] or ''}|{' '.join(row['scopes'])}"
    await ctx.redis.set(key, raw, ex=CACHE_TTL_S)
    return _parse_grant(raw)


def _parse_grant(raw: str | bytes) -> Grant:
    text = raw.decode() if isinstance(raw, bytes) else raw
    tid, app, acct, scopes = text.split("|", 3)
    return Grant(int(tid), int(app), int(acct) if acct else None, frozenset(scopes.split()))


async def require(ctx: Ctx, token: str | None, scope: str, *, user: bool = True) -> Grant:
    """The grant of `token` when it allows `scope` (and acts for an account, with `user`)."""
    grant = await resolve(ctx, token)
    if grant is None:
        raise Unauthorized("The access token is invalid")
    if user and grant.account_id is None:
        raise Unauthorized("This method requires an authenticated user")
    if not grant.allows(scope):
        raise Forbidden("This action is outside the authorized scopes")
    return grant
