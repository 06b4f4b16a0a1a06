"""Mastodon entities (docs.joinmastodon.org/entities, as of Mastodon 4.3) from Freehold's rows.

Every key of an entity is present: empty lists as [], absent values as null. Freehold has one
kind of visibility (public), no content warnings, polls, cards, edits, custom emojis or
profile fields: those keys are fixed (`visibility: "public"`, `spoiler_text: ""`, `poll`,
`card`, `edited_at`, `language`: null, `emojis`, `fields`: []); docs/mastodon-api.md lists them.
Ids are Freehold's 64-bit time-ordered ids as decimal strings (all of today's are 19 digits
long, so they also sort in time order as strings). Echo = reblog, upvote = favourite.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson

from freehold.app.ids import id_datetime

TOKEN_RE = re.compile(
    r"(?P<url>\bhttps?://[^\s<>\"']{1,400})"
    r"|(?<![\w#])#(?P<tag>\w{1,64})"
    r"|(?<![\w@])@(?P<user>[A-Za-z0-9_]{3,30})\b")
TRAILING = ".,;:!?)]}'\""
KIND_TYPES = {"follow": "follow", "reply": "mention", "mention": "mention", "echo": "reblog",
              "upvote": "favourite"}


def when(dt: datetime) -> str:
    """Mastodon's datetime format: ISO 8601 in UTC with milliseconds and Z."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Base:
    """The absolute URLs of one request's answers (`base`: scheme://host of the request)."""

    def __init__(self, base: str, media_prefix: str) -> None:
        self.base = base.rstrip("/")
        self.media = media_prefix if "://" in media_prefix else self.base + media_prefix
        self.default_avatar = f"{self.base}/icons/icon-192.png"

    def media_url(self, key: str) -> str:
        return f"{self.media}{key}"

    def profile(self, username: str) -> str:
        return f"{self.base}/u/{quote(username)}"

    def post(self, pid: int | str) -> str:
        return f"{self.base}/p/{pid}"

    def tag(self, name: str) -> str:
        return f"{self.base}/tag/{quote(name.lower())}"


def content_html(b: Base, body: str, mentioned: dict[str, int]) -> str:
    """A post's text as Mastodon HTML: escaped, paragraphs, line breaks, linked URLs, hashtags
    and the @mentions that name accounts (`mentioned`: lower-cased username → id)."""
    if not body:
        return ""
    paras = [p for p in re.split(r"\n{2,}", body) if p.strip()]
    return "".join(f"<p>{_inline(b, p, mentioned)}</p>" for p in paras)


def _inline(b: Base, text: str, mentioned: dict[str, int]) -> str:
    out: list[str] = []
    last = 0
    for m in TOKEN_RE.finditer(text):
        out.append(html.escape(text[last:m.start()]))
        if m.group("url"):
            url, tail = m.group("url"), ""
            while url and url[-1] in TRAILING:
                tail, url = url[-1] + tail, url[:-1]
            u = html.escape(url)
            out.append(f'<a href="{u}" target="_blank" rel="nofollow noopener noreferrer" '
                       f'translate="no">{u}</a>{html.escape(tail)}')
        elif m.group("tag"):
            tag = m.group("tag")
            out.append(f'<a href="{html.escape(b.tag(tag))}" class="mention hashtag" '
                       f'rel="tag">#<span>{html.escape(tag)}</span></a>')
        else:
            user = m.group("user")
            if user.lower() in mentioned:
                out.append(f'<span class="h-card" translate="no"><a href="'
                           f'{html.escape(b.profile(user.lower()))}" class="u-url mention">'
                           f'@<span>{html.escape(user)}</span></a></span>')
            else:
                out.append(html.escape(m.group(0)))
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out).replace("\n", "<br />")


def note_html(bio: str) -> str:
    if not bio:
        return ""
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br />')}</p>"
                   for p in re.split(r"\n{2,}", bio) if p.strip())


def account(b: Base, r: Any, *, source: bool = False) -> dict[str, Any]:
    """Account (with `source` and `role`: CredentialAccount, for the account itself)."""
    username = r["username"]
    avatar = b.media_url(r["avatar_key"]) if r["avatar_key"] else b.default_avatar
    last = r.get("last_post")
    doc: dict[str, Any] = {
        "id": str(r["id"]), "username": username, "acct": username,
        "url": b.profile(username), "uri": f"{b.base}/users/{quote(username)}",
        "display_name": r["display_name"] or username, "note": note_html(r["bio"]),
        "avatar": avatar, "avatar_static": avatar,
        "header": b.default_avatar, "header_static": b.default_avatar,
        "locked": False, "fields": [], "emojis": [], "bot": False, "group": False,
        "discoverable": True, "indexable": False, "noindex": True, "moved": None,
        "memorial": False, "suspended": r["suspended_at"] is not None, "limited": False,
        "hide_collections": False, "created_at": when(r["created_at"]),
        "last_status_at": id_datetime(last).date().isoformat() if last else None,
        "statuses_count": r["posts_count"], "followers_count": r["followers_count"],
        "following_count": r["following_count"], "roles": [],
    }
    if source:
        doc["source"] = {"privacy": "public", "sensitive": False, "language": "",
                         "note": r["bio"], "fields": [], "follow_requests_count": 0,
                         "hide_collections": False, "discoverable": True, "indexable": False,
                         "attribution_domains": []}
        doc["role"] = {"id": "-99", "name": "", "permissions": "0", "color": "",
                       "highlighted": False}
    return doc


def media(b: Base, m: dict[str, Any]) -> dict[str, Any]:
    """MediaAttachment of an image ({id, key, type, description?} of a post, or a media row)."""
    url = b.media_url(m["key"])
    return {"id": str(m["id"]), "type": "image", "url": url, "preview_url": url,
            "remote_url": None, "preview_remote_url": None, "text_url": None, "meta": {},
            "description": m.get("description"), "blurhash": None}


def media_row(b: Base, r: Any) -> dict[str, Any]:
    return media(b, {"id": r["id"], "key": r["s3_key"], "description": r["description"]})


def relationship(r: Any) -> dict[str, Any]:
    return {"id": str(r["id"]), "following": r["following"], "showing_reblogs": r["following"],
            "notifying": False, "languages": None, "followed_by": r["followed_by"],
            "blocking": r["blocking"], "blocked_by": r["blocked_by"], "muting": r["muting"],
            "muting_notifications": r["muting"], "requested": False, "requested_by": False,
            "domain_blocking": False, "endorsed": False, "note": ""}


def tag(b: Base, name: str, uses: int | None = None, accounts: int | None = None
        ) -> dict[str, Any]:
    day = int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    history = [] if uses is None else [{"day": str(day), "uses": str(uses),
                                        "accounts": str(accounts if accounts is not None
                                                        else uses)}]
    return {"name": name, "url": b.tag(name), "history": history, "following": False}


class StatusRenderer:
    """Status entities of rows of app.services.mastodon.statuses, with the accounts they name
    (`accounts`: id → row of accounts_by_id)."""

    def __init__(self, b: Base, accounts: dict[int, Any]) -> None:
        self.b = b
        self.accounts = accounts
        self._acct: dict[int, dict[str, Any]] = {}

    def account(self, aid: int) -> dict[str, Any]:
        doc = self._acct.get(aid)
        if doc is None:
            doc = self._acct[aid] = account(self.b, self.accounts[aid])
        return doc

    def status(self, r: Any, *, text: bool = False) -> dict[str, Any]:
        if r["echo_of_id"] and not r["body"] and r["e_id"] is not None and not r["e_hidden"]:
            inner = self._one(r, "e_")
            doc = self._one(r, "")
            doc.update(reblog=inner, content="", media_attachments=[], mentions=[], tags=[],
                       favourited=inner["favourited"], reblogged=inner["reblogged"],
                       reblogs_count=0, favourites_count=0, replies_count=0)
        else:
            doc = self._one(r, "")
            if r["echo_of_id"] and r["body"] and r["e_id"] is not None:
                url = self.b.post(r["e_id"])  # a quoting echo: its text, then the link
                doc["content"] += (f'<p>RE: <a href="{html.escape(url)}" target="_blank" '
                                   f'rel="nofollow noopener noreferrer">{html.escape(url)}'
                                   "</a></p>")
        if text:
            doc["text"] = r["body"]
        return doc

    def _one(self, r: Any, x: str) -> dict[str, Any]:
        pid, body = r[f"{x}id"], r[f"{x}body"] or ""
        mentioned = {self.accounts[i]["username"]: i for i in r[f"{x}mention_ids"]
                     if i in self.accounts}
        reply_to = r[f"{x}reply_to_id"]
        reply_author = r[f"{x}reply_author"]
        tags = _tags(body)
        media_list = r[f"{x}media"]
        if isinstance(media_list, str):
            media_list = orjson.loads(media_list)
        return {
            "id": str(pid), "created_at": when(id_datetime(pid)),
            "in_reply_to_id": str(reply_to) if reply_to else None,
            "in_reply_to_account_id": str(reply_author) if reply_to and reply_author else None,
            "sensitive": False, "spoiler_text": "", "visibility": "public", "language": None,
            "uri": f"{self.b.base}/users/{quote(self.accounts[r[f'{x}author_id']]['username'])}"
                   f"/statuses/{pid}",
            "url": self.b.post(pid),
            "replies_count": r[f"{x}replies"], "reblogs_count": r[f"{x}echoes"],
            "favourites_count": r[f"{x}upvotes"], "edited_at": None,
            "favourited": r[f"{x}upvoted"], "reblogged": r[f"{x}echoed"], "muted": False,
            "bookmarked": False, "pinned": False, "filtered": [],
            "content": content_html(self.b, body, mentioned),
            "reblog": None, "application": None,
            "account": self.account(r[f"{x}author_id"]),
            "media_attachments": [media(self.b, m) for m in media_list or ()],
            "mentions": [{"id": str(i), "username": u, "url": self.b.profile(u), "acct": u}
                         for u, i in mentioned.items()],
            "tags": [{"name": t, "url": self.b.tag(t)} for t in tags],
            "emojis": [], "card": None, "poll": None, "text": None,
        }


def _tags(body: str) -> list[str]:
    seen: dict[str, None] = {}
    for m in TOKEN_RE.finditer(body) if "#" in body else ():
        if m.group("tag"):
            seen.setdefault(m.group("tag").lower(), None)
    return list(seen)


def account_ids_of(rows: list[Any]) -> set[int]:
    """The accounts a page of status rows names: authors, echoed authors, mentions."""
    ids: set[int] = set()
    for r in rows:
        ids.add(r["author_id"])
        ids.update(r["mention_ids"])
        if r["e_id"] is not None:
            ids.add(r["e_author_id"])
            ids.update(r["e_mention_ids"])
    return ids


def notification(n: Any, actor: dict[str, Any], status: dict[str, Any] | None
                 ) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": str(n["id"]), "type": KIND_TYPES[n["kind"]],
                           "created_at": when(id_datetime(n["id"])),
                           "group_key": f"ungrouped-{n['id']}", "account": actor}
    if status is not None:
        doc["status"] = status
    return doc


def marker(r: Any) -> dict[str, Any]:
    return {"last_read_id": str(r["last_read_id"]), "version": r["version"],
            "updated_at": when(r["updated_at"])}
