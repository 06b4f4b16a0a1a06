"""Jinja2 rendering for the web UI: autoescaped templates, post-text links, security headers.

Every piece of user text goes through Jinja2's autoescape; `linkify` escapes the text itself and
only adds the <a> tags for hashtags, @mentions and http(s) URLs it recognised in the raw text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from freehold.app.api.deps import get_ctx
from freehold.app.web.session import attach_csrf_cookie, csrf_token

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

TOKEN_RE = re.compile(
    r"(?P<url>\bhttps?://[^\s<>\"']{1,400})"
    r"|(?<![\w#])#(?P<tag>\w{1,64})"
    r"|(?<![\w@])@(?P<user>[A-Za-z0-9_]{3,30})\b")
TRAILING = ".,;:!?)]}'\""


def linkify(text: str | None) -> Markup:
    """Escaped text with #tags, @mentions and URLs as links."""
    if not text:
        return Markup("")
    out: list[str] = []
    last = 0
    for m in TOKEN_RE.finditer(text):
        out.append(str(escape(text[last:m.start()])))
        if m.group("url"):
            url = m.group("url")
            tail = ""
            while url and url[-1] in TRAILING:
                tail = url[-1] + tail
                url = url[:-1]
            out.append(f'<a href="{escape(url)}" rel="nofollow noopener ugc" target="_blank">'
                       f"{escape(url)}</a>{escape(tail)}")
        elif m.group("tag"):
            tag = m.group("tag")
            out.append(f'<a class="tag" href="/tag/{quote(tag.lower())}">#{escape(tag)}</a>')
        else:
            user = m.group("user")
            out.append(f'<a class="mention" href="/u/{quote(user.lower())}">@{escape(user)}</a>')
        last = m.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def ago(iso: str | datetime | None) -> str:
    """A short relative time: 'now', '5m', '3h', '2d', or the date."""
    if not iso:
        return ""
    when = datetime.fromisoformat(iso) if isinstance(iso, str) else iso
    secs = (datetime.now(UTC) - when).total_seconds()
    if secs < 45:
        return "now"
    if secs < 3600:
        return f"{int(secs // 60) or 1}m"
    if secs < 86400:
        return f"{int(secs // 3600)}h"
    if secs < 7 * 86400:
        return f"{int(secs // 86400)}d"
    return when.strftime("%Y-%m-%d")


def duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


@lru_cache(maxsize=1)
def env() -> Environment:
    e = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                    autoescape=select_autoescape(["html", "xml"], default=True),
                    trim_blocks=True, lstrip_blocks=True)
    e.filters["linkify"] = linkify
    e.filters["ago"] = ago
    e.filters["duration"] = duration
    e.globals["static_version"] = static_version()
    return e


@lru_cache(maxsize=1)
def static_version() -> str:
    """A short hash of the static files: cache-busts the shell when they change."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(STATIC.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:10]


def csp(request: Request) -> str:
    img = "'self' data: blob:"
    prefix = get_ctx(request).settings.media_url_prefix
    if prefix.startswith(("http://", "https://")):
        parts = urlsplit(prefix)
        img += f" {parts.scheme}://{parts.netloc}"
    return (f"default-src 'self'; img-src {img}; style-src 'self'; script-src 'self'; "
            f"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def security_headers(request: Request, response: Any, *, private: bool = True) -> None:
    response.headers["Content-Security-Policy"] = csp(request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if private:  # pages of a logged-in user: never stored by the browser, a proxy or the SW
        response.headers["Cache-Control"] = "no-store"


async def render(request: Request, name: str, status: int = 200, *,
                 headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    from freehold.app.web.session import current_viewer

    viewer = await current_viewer(request)
    html = env().get_template(name).render(
        request=request, me=viewer, csrf=csrf_token(request),
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context)
    response = HTMLResponse(html, status_code=status, headers=headers)
    attach_csrf_cookie(request, response)
    security_headers(request, response)
    return response
