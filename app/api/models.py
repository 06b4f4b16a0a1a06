"""Request bodies of the JSON API (they document the OpenAPI schema; the services validate)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Id = Field(pattern=r"^[0-9]{1,19}$", description="64-bit id as a decimal string")


class ProofIn(BaseModel):
    """A solved challenge of GET /api/v1/accounts/challenge."""

    challenge: str = Field(min_length=1, max_length=200)
    counter: int = Field(ge=0, le=2**53 - 1,
                         description="SHA-256(challenge + ':' + counter) starts with the "
                                     "challenge's number of zero bits")


class SignupIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=256)
    display_name: str = Field(default="", max_length=200)
    proof: ProofIn | None = Field(default=None, description="required when the challenge "
                                  "endpoint says so (many sign-ups from one address)")


class LoginIn(BaseModel):
    login: str = Field(min_length=1, max_length=254, description="username or e-mail")
    password: str = Field(min_length=1, max_length=1024)


class ProfileIn(BaseModel):
    display_name: str | None = Field(default=None, max_length=200)
    bio: str | None = Field(default=None, max_length=2000)


class DeleteAccountIn(BaseModel):
    password: str = Field(min_length=1, max_length=1024)


class PostIn(BaseModel):
    body: str = Field(default="", max_length=100_000,
                      description="at most 1,000 Unicode code points (checked by the service)")
    reply_to_id: str | None = Field(default=None, pattern=r"^[0-9]{1,19}$")
    media_ids: list[str] = Field(default_factory=list, max_length=20)


class EchoIn(BaseModel):
    body: str = Field(default="", max_length=100_000, description="optional comment")


class ReportIn(BaseModel):
    reason: Literal["incitement", "threat", "harassment", "spam", "illegal", "other"]
    post_id: str | None = Field(default=None, pattern=r"^[0-9]{1,19}$")
    account_id: str | None = Field(default=None, pattern=r"^[0-9]{1,19}$")
    note: str = Field(default="", max_length=1000)


class VoteIn(BaseModel):
    decision: Literal["remove", "keep"]


class AppealIn(BaseModel):
    body: str = Field(min_length=1, max_length=2000)


class AppealDecisionIn(BaseModel):
    grant: bool


class FlagIn(BaseModel):
    value: bool = True


class MarkReadIn(BaseModel):
    up_to: str | None = Field(default=None, pattern=r"^[0-9]{1,19}$")
