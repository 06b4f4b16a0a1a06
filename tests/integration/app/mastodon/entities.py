"""Mastodon's entities as its API documentation defines them (docs.joinmastodon.org/entities,
github.com/mastodon/documentation content/en/entities/*.md), as of Mastodon 4.3, the version
Freehold says it is compatible with: every attribute's key and type, `?` where the docs say
nullable. Attributes the docs mark optional are listed where Freehold always sends them
(e.g. Status.favourited for an authenticated viewer); attributes added after 4.3 are left out
(quotes, Account.show_media, ...), as are admin-only ones (Tag.id).

`check(value, "Status")` raises AssertionError naming the path of the first key missing or of
the wrong type.
"""

from __future__ import annotations

import re
from typing import Any

ID = "id"  # a string of decimal digits (ids are cast from integers)
DATETIME = "datetime"  # ISO 8601, e.g. 2019-12-08T03:48:33.901Z
DATE = "date"  # 2019-12-08
URL = "url"  # an absolute http(s) URL

ENTITIES: dict[str, dict[str, str]] = {
    "Account": {
        "id": ID, "username": "str", "acct": "str", "url": "url?", "uri": URL,
        "display_name": "str", "note": "str", "avatar": URL, "avatar_static": URL,
        "header": URL, "header_static": URL, "locked": "bool", "fields": "list:Field",
        "emojis": "list:CustomEmoji", "bot": "bool", "group": "bool", "discoverable": "bool?",
        "noindex": "bool?", "moved": "Account?", "suspended": "bool", "limited": "bool",
        "created_at": DATETIME, "last_status_at": "date?", "statuses_count": "int",
        "followers_count": "int", "following_count": "int", "hide_collections": "bool?",
        "indexable": "bool", "memorial": "bool", "roles": "list",
    },
    "CredentialAccount": {"source": "dict", "role": "dict"},  # and every Account key
    "Field": {"name": "str", "value": "str", "verified_at": "datetime?"},
    "CustomEmoji": {"shortcode": "str", "url": URL, "static_url": URL,
                    "visible_in_picker": "bool"},
    "Status": {
        "id": ID, "uri": "str", "created_at": DATETIME, "account": "Account",
        "content": "str", "visibility": "enum:public,unlisted,private,direct",
        "sensitive": "bool", "spoiler_text": "str", "media_attachments": "list:MediaAttachment",
        "mentions": "list:Mention", "tags": "list:StatusTag", "emojis": "list:CustomEmoji",
        "reblogs_count": "int", "favourites_count": "int", "replies_count": "int",
        "url": "url?", "in_reply_to_id": "id?", "in_reply_to_account_id": "id?",
        "reblog": "Status?", "poll": "dict?", "card": "dict?", "language": "str?",
        "text": "str?", "edited_at": "datetime?", "favourited": "bool", "reblogged": "bool",
        "muted": "bool", "bookmarked": "bool", "pinned": "bool", "filtered": "list",
    },
    "Mention": {"id": ID, "username": "str", "url": URL, "acct": "str"},
    "StatusTag": {"name": "str", "url": URL},
    "MediaAttachment": {
        "id": ID, "type": "enum:unknown,image,gifv,video,audio", "url": "url?",
        "preview_url": "url?", "remote_url": "url?", "meta": "dict?", "description": "str?",
        "blurhash": "str?",
    },
    "Notification": {
        "id": ID, "type": "enum:mention,status,reblog,follow,follow_request,favourite,poll,"
                          "update,admin.sign_up,admin.report,severed_relationships,"
                          "moderation_warning",
        "group_key": "str", "created_at": DATETIME, "account": "Account",
    },
    "Relationship": {
        "id": ID, "following": "bool", "showing_reblogs": "bool", "notifying": "bool",
        "languages": "list?", "followed_by": "bool", "blocking": "bool", "blocked_by": "bool",
        "muting": "bool", "muting_notifications": "bool", "requested": "bool",
        "requested_by": "bool", "domain_blocking": "bool", "endorsed": "bool", "note": "str",
    },
    "Tag": {"name": "str", "url": URL, "history": "list:TagHistory"},
    "TagHistory": {"day": "str", "uses": "str", "accounts": "str"},
    "Application": {"name": "str", "website": "str?", "scopes": "list",
                    "redirect_uris": "list", "redirect_uri": "str"},
    "CredentialApplication": {"id": "str", "name": "str", "website": "str?", "scopes": "list",
                              "redirect_uris": "list", "redirect_uri": "str",
                              "client_id": "str", "client_secret": "str",
                              "client_secret_expires_at": "int"},
    "Token": {"access_token": "str", "token_type": "str", "scope": "str", "created_at": "int"},
    "Context": {"ancestors": "list:Status", "descendants": "list:Status"},
    "Search": {"accounts": "list:Account", "statuses": "list:Status",
               "hashtags": "list:Tag"},
    "Report": {"id": ID, "action_taken": "bool", "action_taken_at": "datetime?",
               "category": "enum:spam,legal,violation,other", "comment": "str",
               "forwarded": "bool", "created_at": DATETIME, "status_ids": "list?",
               "rule_ids": "list?", "target_account": "Account"},
    "Marker": {"last_read_id": ID, "version": "int", "updated_at": DATETIME},
    "Preferences": {"posting:default:visibility": "enum:public,unlisted,private,direct",
                    "posting:default:sensitive": "bool", "posting:default:language": "str?",
                    "reading:expand:media": "enum:default,show_all,hide_all",
                    "reading:expand:spoilers": "bool"},
    "Instance": {  # /api/v2/instance
        "domain": "str", "title": "str", "version": "str", "source_url": URL,
        "description": "str", "usage": "dict", "thumbnail": "dict", "languages": "list",
        "configuration": "dict", "registrations": "dict", "contact": "dict", "rules": "list",
    },
    "V1_Instance": {
        "uri": "str", "title": "str", "short_description": "str", "description": "str",
        "email": "str", "version": "str", "urls": "dict", "stats": "dict",
        "thumbnail": "url?", "languages": "list", "registrations": "bool",
        "approval_required": "bool", "invites_enabled": "bool", "configuration": "dict",
        "contact_account": "Account?", "rules": "list",
    },
}
ENTITIES["CredentialAccount"] = {**ENTITIES["Account"], **ENTITIES["CredentialAccount"]}
_DATETIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def check(value: Any, entity: str, path: str = "") -> None:
    """Every key of `entity` in `value`, each of its type (recursively)."""
    path = path or entity
    assert isinstance(value, dict), f"{path}: an object, got {type(value).__name__}"
    for key, spec in ENTITIES[entity].items():
        assert key in value, f"{path}: key {key!r} missing"
        check_type(value[key], spec, f"{path}.{key}")


def check_list(value: Any, entity: str, path: str = "") -> None:
    assert isinstance(value, list), f"{path or entity}: a list"
    for i, v in enumerate(value):
        check(v, entity, f"{path or entity}[{i}]")


def check_type(v: Any, spec: str, path: str) -> None:
    nullable = spec.endswith("?")
    spec = spec.rstrip("?")
    if v is None:
        assert nullable, f"{path}: null where the docs allow none"
        return
    if spec.startswith("list"):
        assert isinstance(v, list), f"{path}: a list, got {v!r}"
        if ":" in spec:
            for i, item in enumerate(v):
                check(item, spec.split(":", 1)[1], f"{path}[{i}]")
    elif spec.startswith("enum:"):
        assert v in spec[5:].split(","), f"{path}: {v!r} is not one of {spec[5:]}"
    elif spec == "str":
        assert isinstance(v, str), f"{path}: a string, got {v!r}"
    elif spec == "int":
        assert isinstance(v, int) and not isinstance(v, bool), f"{path}: an integer, got {v!r}"
    elif spec == "bool":
        assert isinstance(v, bool), f"{path}: a boolean, got {v!r}"
    elif spec == "dict":
        assert isinstance(v, dict), f"{path}: an object, got {v!r}"
    elif spec == ID:
        assert isinstance(v, str) and v.isdigit(), f"{path}: an id string, got {v!r}"
    elif spec == DATETIME:
        assert isinstance(v, str) and _DATETIME_RE.match(v), f"{path}: a datetime, got {v!r}"
    elif spec == DATE:
        assert isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", v), f"{path}: {v!r}"
    elif spec == URL:
        assert isinstance(v, str) and re.match(r"^https?://[^/\s]+", v), f"{path}: {v!r}"
    else:
        check(v, spec, path)
