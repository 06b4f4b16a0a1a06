"""Request plumbing of the Mastodon API: tokens and scopes, parameters from the query string,
a form or JSON alike, pages (max_id / since_id / min_id / limit) and their Link headers, the
entities' base URLs, rendering pages of statuses and accounts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from starlette.datastructures import UploadFile

from freehold.app import readwrite
from freehold.app.api.deps import JSON, client_ip, get_ctx
from freehold.app.context import Ctx
from freehold.app.ids import parse_id
from freehold.app.mastodon import entities
from freehold.app.services import mastodon as store
from freehold.app.services import oauth, ratelimit
from freehold.app.services.errors import Invalid, NotFound
from freehold.app.services.oauth import Grant

Params = dict[str, Any]


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def scope(needed: str, *, user: bool = True, write: bool = False
          ) -> Callable[[Request], Awaitable[Grant]]:
    """A dependency: the request's grant when its token allows `needed` (401/403 otherwise);
    with `write`, the request counts against the write rate limits as the native API's."""

    async def dep(request: Request) -> Grant:
        ctx = get_ctx(request)
        grant = await oauth.require(ctx, bearer_token(request), needed, user=user)
        request.state.grant = grant
        if grant.account_id is not None:
            if write:
                await ratelimit.write(ctx, grant.account_id, client_ip(request))
                await readwrite.wrote(ctx, grant.account_id)
            else:
                await readwrite.reading(ctx, grant.account_id)
        return grant

    dep.__name__ = f"scope_{needed.replace(':', '_')}"
    return dep


def me(grant: Grant) -> int:
    assert grant.account_id is not None  # scope(user=True) checked it
    return grant.account_id


def _add(out: Params, key: str, value: Any) -> None:
    if key.endswith("[]"):
        out.setdefault(key[:-2], [])
        if isinstance(out[key[:-2]], list):
            out[key[:-2]].append(value)
    else:
        out[key] = value


async def params(request: Request) -> Params:
    """The request's parameters: the query string, then a JSON or form body over it (Mastodon
    takes each parameter from any of them; `name[]` collects a list)."""
    cached = getattr(request.state, "params", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    out: Params = {}
    for k, v in request.query_params.multi_items():
        _add(out, k, v)
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            raw = await request.body()
            if raw.strip():
                try:
                    doc = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    raise Invalid("body: not valid JSON") from None
                if not isinstance(doc, dict):
                    raise Invalid("body: a JSON object")
                out.update(doc)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form(max_files=8, max_fields=200)
            for k, v in form.multi_items():
                _add(out, k, v)
    request.state.params = out
    return out


def text(p: Params, name: str, default: str | None = None) -> str | None:
    v = p.get(name, default)
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    raise Invalid(f"{name}: must be text", field=name)


def flag(p: Params, name: str, default: bool = False) -> bool:
    v = p.get(name)
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    s = str(v).lower()
    if s in ("1", "true", "on", "yes", "t"):
        return True
    if s in ("0", "false", "off", "no", "f"):
        return False
    raise Invalid(f"{name}: true or false", field=name)


def strings(p: Params, name: str) -> list[str]:
    v = p.get(name)
    if v is None:
        return []
    items = v if isinstance(v, list) else [v]
    if not all(isinstance(i, str | int) and not isinstance(i, bool) for i in items):
        raise Invalid(f"{name}: a list of strings", field=name)
    return [str(i) for i in items]


def file(p: Params, name: str = "file") -> UploadFile:
    f = p.get(name)
    if not isinstance(f, UploadFile):
        raise Invalid(f"{name}: upload the image as multipart/form-data", field=name)
    return f


def an_id(raw: Any, what: str = "Record") -> int:
    v = parse_id(raw if isinstance(raw, str | int) and not isinstance(raw, bool) else None)
    if v is None:
        raise NotFound("Record not found")
    return v


def page(p: Params, default: int = 20, most: int = 40) -> store.Page:
    def cursor(name: str) -> int | None:
        raw = p.get(name)
        if raw in (None, ""):
            return None
        v = parse_id(raw if isinstance(raw, str | int) else None)
        if v is None:
            raise Invalid(f"{name}: an id from a previous page", field=name)
        return v

    raw = p.get("limit")
    try:
        limit = default if raw in (None, "") else int(raw)
    except (TypeError, ValueError):
        raise Invalid("limit: a number", field="limit") from None
    return store.Page(cursor("max_id"), cursor("since_id"), cursor("min_id"),
                      max(1, min(limit, most)))


def base(request: Request) -> entities.Base:
    b = getattr(request.state, "base", None)
    if b is None:
        url = request.url
        b = request.state.base = entities.Base(f"{url.scheme}://{url.netloc}",
                                               get_ctx(request).settings.media_url_prefix)
    return b  # type: ignore[no-any-return]


def paged(request: Request, items: list[Any], ids: list[int], limit: int) -> JSON:
    """A page's JSON with its Link header: next (older: max_id) when the page is full, prev
    (newer: min_id) when it has anything."""
    links = []
    if ids:
        url = request.url
        keep = [(k, v) for k, v in request.query_params.multi_items()
                if k not in ("max_id", "min_id", "since_id")]

        def link(name: str, value: int, rel: str) -> str:
            q = "&".join(f"{k}={v}" for k, v in
                         [*((k, _q(v)) for k, v in keep), (name, str(value))])
            return f'<{url.scheme}://{url.netloc}{url.path}?{q}>; rel="{rel}"'

        if len(ids) >= limit:
            links.append(link("max_id", ids[-1], "next"))
        links.append(link("min_id", ids[0], "prev"))
    return JSON(items, headers={"Link": ", ".join(links)} if links else None)


def _q(v: str) -> str:
    from urllib.parse import quote

    return quote(v, safe="[]")


async def render_statuses(ctx: Ctx, request: Request, viewer: int, ids: list[int], *,
                          pool: Any = None, text: bool = False) -> list[dict[str, Any]]:
    """Status entities of `ids`, in that order (not visible ones left out): two queries."""
    rows = await store.statuses(ctx, viewer, ids, pool)
    accts = await store.accounts_by_id(ctx, entities.account_ids_of(list(rows.values())),
                                       pool)
    r = entities.StatusRenderer(base(request), accts)
    out = []
    for i in ids:
        row = rows.get(i)
        if row is None or row["author_id"] not in accts or \
                (row["e_id"] is not None and row["e_author_id"] not in accts):
            continue
        if row["echo_of_id"] and not row["body"] and (row["e_id"] is None or row["e_hidden"]):
            continue  # a plain echo of a post gone or hidden
        out.append(r.status(row, text=text))
    return out


async def render_status(ctx: Ctx, request: Request, viewer: int, pid: int, **kw: Any
                        ) -> dict[str, Any]:
    got = await render_statuses(ctx, request, viewer, [pid], pool=ctx.db, **kw)
    if not got:
        raise NotFound("Record not found")
    return got[0]


async def render_accounts(ctx: Ctx, request: Request, ids: list[int]) -> list[dict[str, Any]]:
    rows = await store.accounts_by_id(ctx, ids)
    b = base(request)
    return [entities.account(b, rows[i]) for i in ids if i in rows]
