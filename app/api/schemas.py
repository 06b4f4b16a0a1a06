"""Response bodies of the JSON API, for the OpenAPI description only.

The routes return their `Response` (app.api.deps.JSON / JSONBytes) themselves, so FastAPI
neither validates nor re-renders what they send: these models cost nothing per request. They
mirror what the services build (app.services.accounts.account_json, app.services.posts.post_json
and app.services.postjson, notifications.listing, moderation._case_json, ...); extra fields are
refused (`additionalProperties: false`) so that the schemathesis test
(tests/integration/app/test_openapi_fuzz.py) notices when a service and its model drift apart.

FastAPI documents a `response_model` only when the route's response class is a JSONResponse
(fastapi/openapi/utils.py: any other class's body is documented as a string, and a
`responses={200: {"model": ...}}` is merged into that string schema). `DocJSON` is that class:
the routers take it as their default; it renders like deps.JSON if ever used.

`errors(...)` builds a route's `responses=`: the error body (app.main's exception handlers)
for each status the route can answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from freehold.app.api.deps import JSON

IdStr = Annotated[str, Field(pattern=r"^[0-9]{1,19}$",
                             description="64-bit id as a decimal string")]
Reason = Literal["incitement", "threat", "harassment", "spam", "illegal", "other"]
ImageType = Literal["image/jpeg", "image/png", "image/gif", "image/webp"]


class DocJSON(JSON, JSONResponse):
    """deps.JSON, declared as a JSONResponse so that FastAPI documents the response_model."""


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors -----------------------------------------------------------------------------

ErrorCode = Literal["invalid", "bad_request", "unauthorized", "forbidden", "suspended",
                    "not_found", "method_not_allowed", "conflict", "too_large", "rate_limited",
                    "proof_refused", "unavailable", "http_error"]
# the framework's own refusals (HTTPException: a body it cannot parse, no such route or method)
# by status, in app.main's handler; the services' codes are their errors' (app.services.errors)
HTTP_ERROR_CODES: dict[int, ErrorCode] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid",
    429: "rate_limited"}


class Error(Out):
    """Every error answer of the API (app.services.errors, app.main's exception handlers)."""

    error: ErrorCode = Field(description="machine-readable: invalid (422), bad_request (400),"
                             " unauthorized (401), forbidden or suspended (403), not_found"
                             " (404), conflict (409), rate_limited (429), proof_refused (422:"
                             " a sign-up's proof of work is missing or not valid, fetch a new"
                             " challenge), unavailable (503: PostgreSQL or Redis down for a"
                             " moment); http_error: another")
    message: str = Field(description="for people: what went wrong and what to do")
    field: str | None = Field(default=None, description="the input at fault, when one is")


ERROR_TEXT = {
    400: "Malformed body: not UTF-8 JSON, or a broken multipart form",
    401: "Not logged in (no, unknown or expired bearer token), or wrong password",
    403: "Not allowed: a block between the accounts, a suspended account, or a role needed",
    404: "No such object (or not visible to this account)",
    409: "Conflicts with the current state (already done, already taken, already decided)",
    422: "Invalid input (`field` names it)",
    429: "Rate limited: retry after `Retry-After` seconds",
    503: "PostgreSQL, Redis or the media store unavailable for a moment (a failover): retry "
         "after `Retry-After` seconds",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                               "required": True,
                               "schema": {"type": "integer", "minimum": 1}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: the error body for each of `statuses` (429: and its
    Retry-After header, as 503's)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        doc: dict[str, Any] = {"model": Error, "description": ERROR_TEXT[status]}
        if status in (429, 503):
            doc["headers"] = RETRY_AFTER
        out[status] = doc
    return out


# --- accounts ---------------------------------------------------------------------------


class Account(Out):
    """A public profile (app.services.accounts.account_json)."""

    id: IdStr
    username: str
    display_name: str = Field(description="the username when none was set")
    bio: str
    avatar_url: str | None
    verified: bool
    juror: bool
    admin: bool
    suspended: bool
    followers_count: int
    following_count: int
    posts_count: int
    created_at: datetime


class OwnAccount(Account):
    """The logged-in account's own profile: with its moderation strikes."""

    strikes: int


class Relationship(Out):
    """Between the logged-in account (the viewer) and this one."""

    following: bool = Field(description="the viewer follows it")
    followed_by: bool = Field(description="it follows the viewer")
    blocking: bool = Field(description="the viewer blocks it")
    blocked_by: bool = Field(description="it blocks the viewer")
    muting: bool = Field(description="the viewer mutes it")


class AccountView(Account):
    relationship: Relationship


class Session(Out):
    token: str = Field(description="send as `Authorization: Bearer <token>`")
    account: OwnAccount


class SignupChallenge(Out):
    """Whether a sign-up from this address needs a proof of work now, and its challenge
    (app.services.signup_proof)."""

    required: bool = Field(description="false: sign up without a proof")
    algorithm: Literal["sha256-leading-zero-bits"] = Field(
        description="find the smallest counter (decimal, from 0) such that "
                    "SHA-256(challenge + ':' + counter) starts with `difficulty` zero bits")
    difficulty: int = Field(ge=0, description="leading zero bits required (0: none)")
    challenge: str | None = Field(description="send back as proof.challenge; null when no proof"
                                  " is required")
    expires_at: int | None = Field(description="Unix time after which the challenge is refused")


class AccountPage(Out):
    items: list[Account]
    next_cursor: str | None = Field(description="cursor of the next page; null on the last")


class AccountList(Out):
    items: list[Account]


class Followed(Out):
    following: Literal[True]
    created: bool = Field(description="false when the follow already existed")


class Unfollowed(Out):
    following: Literal[False]


class BlockState(Out):
    blocking: bool


class MuteState(Out):
    muting: bool


# --- posts ------------------------------------------------------------------------------


class Author(Out):
    id: IdStr
    username: str
    display_name: str
    avatar_url: str | None
    verified: bool


class Media(Out):
    id: IdStr
    type: ImageType
    url: str


class EchoedPost(Out):
    """A post as it appears inside an echo (app.services.posts._post_doc)."""

    id: IdStr
    author: Author
    body: str = Field(description="empty for a plain echo or an image-only post")
    tags: list[str]
    mentions: list[str] = Field(description="usernames mentioned")
    reply_to_id: IdStr | None
    root_id: IdStr | None = Field(description="the first post of the thread, for a reply")
    media: list[Media]
    upvotes_count: int
    replies_count: int
    echoes_count: int
    created_at: datetime


class Post(EchoedPost):
    """A post as the viewer sees it (app.services.posts.post_json, app.services.postjson)."""

    upvoted: bool = Field(description="the viewer upvoted it")
    hidden: bool = Field(description="removed by moderation (only its author sees it)")
    echo_of: EchoedPost | None = Field(description="the echoed post, for an echo")


class PostPage(Out):
    items: list[Post]
    next_cursor: str | None = Field(description="cursor of the next page; null on the last")


class PostList(Out):
    items: list[Post]


class Thread(Out):
    post: Post
    ancestors: list[Post] = Field(description="oldest first")
    replies: list[Post] = Field(description="a page of its direct replies, oldest first")
    replies_next_cursor: IdStr | None = Field(
        description="`cursor` of the next page of replies; null on the last")


class UpvoteState(Out):
    upvoted: bool
    upvotes_count: int


# --- feeds, search, notifications -------------------------------------------------------


class TrendingTag(Out):
    tag: str
    posts: int = Field(description="recent posts using it")
    accounts: int = Field(description="distinct accounts among them")


class TrendingTags(Out):
    items: list[TrendingTag]


class Tag(Out):
    tag: str
    uses: int


class TagList(Out):
    items: list[Tag]


class Actor(Out):
    id: IdStr
    username: str
    display_name: str
    verified: bool


class Notification(Out):
    id: IdStr
    kind: Literal["follow", "reply", "mention", "echo", "upvote"]
    read: bool
    created_at: datetime
    actor: Actor
    post: Post | None


class NotificationPage(Out):
    items: list[Notification]
    next_cursor: str | None = Field(description="cursor of the next page; null on the last")


class UnreadCount(Out):
    unread: int


class Marked(Out):
    marked: int = Field(description="notifications newly marked read")


# --- moderation -------------------------------------------------------------------------


class Case(Out):
    """A moderation case: one per target while open, gathering its reports."""

    id: IdStr
    target_kind: Literal["post", "account"]
    post_id: IdStr | None
    account_id: IdStr = Field(description="the account reported (the post's author)")
    username: str
    reason: Reason
    severity: int = Field(description="0 (incitement to violence) first")
    status: Literal["open", "removed", "kept"]
    source: Literal["report", "preflag"]
    reports_count: int
    created_at: datetime
    decided_at: datetime | None


class CaseReport(Out):
    reason: Reason
    note: str


class QueueCase(Case):
    post: Post | None = Field(description="the reported post, when it is one and still shown")
    reports: list[CaseReport]


class Queue(Out):
    items: list[QueueCase]


class CaseList(Out):
    items: list[Case]


class AppealMade(Out):
    id: IdStr
    case_id: IdStr
    status: Literal["open"]


class AppealDecision(Out):
    id: IdStr
    status: Literal["granted", "denied"]


class Appeal(Out):
    id: IdStr
    case_id: IdStr
    username: str = Field(description="the appealing account")
    body: str
    status: Literal["open", "granted", "denied"]
    reason: Reason = Field(description="the case's reason")
    target_kind: Literal["post", "account"]
    post_id: IdStr | None
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None = Field(description="the deciding admin's username (null: open,"
                                   " or that account is gone)")


class AppealList(Out):
    items: list[Appeal]


class ModerationStats(Out):
    queue_size: int
    oldest_age_seconds: float
    by_reason: dict[str, int] = Field(description="open cases per reason")
    open_appeals: int
    suspended_accounts: int
    jurors: int


class AuditEntry(Out):
    id: IdStr
    at: datetime
    actor_id: IdStr | None = Field(description="null: the system (jury, pre-flagger)")
    action: str
    target_kind: str
    target_id: IdStr | None
    detail: dict[str, Any]


class AuditLog(Out):
    items: list[AuditEntry]


# --- operations (app.main) --------------------------------------------------------------


class Health(Out):
    status: Literal["ok"]


class Readiness(Out):
    status: Literal["ok", "unavailable"]
    postgres: str = Field(description="ok, or down: <error>")
    redis: str = Field(description="ok, or down: <error>")
