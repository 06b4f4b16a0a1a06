"""/api/v1: sign-up, log in/out, profiles, avatar, follow, block, mute, account deletion."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, UploadFile
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from freehold.app.api.deps import (
    JSON,
    IdCursor,
    Limit,
    Viewer,
    Writer,
    bearer,
    client_ip,
    get_ctx,
    no_content,
    page,
    path_id,
)
from freehold.app.api.models import DeleteAccountIn, LoginIn, ProfileIn, SignupIn
from freehold.app.api.schemas import (
    AccountPage,
    AccountView,
    BlockState,
    DocJSON,
    Followed,
    MuteState,
    OwnAccount,
    Session,
    SignupChallenge,
    Unfollowed,
    errors,
)
from freehold.app.ids import parse_id
from freehold.app.services import accounts, auth, signup_proof, social
from freehold.app.services.accounts import account_json
from freehold.app.services.errors import Invalid, Unauthorized

router = APIRouter(tags=["accounts"], default_response_class=DocJSON)


@router.post("/accounts", status_code=201, summary="Sign up", response_model=Session,
             responses=errors(400, 409, 422, 429))
async def signup(body: SignupIn, request: Request) -> JSON:
    """Past a few sign-ups per address and hour (or during a site-wide surge) the body needs a
    `proof`: a solved challenge of GET /accounts/challenge (422 `proof_refused` otherwise)."""
    ctx = get_ctx(request)
    proof = (signup_proof.Proof(body.proof.challenge, body.proof.counter)
             if body.proof else None)
    row = await accounts.signup(ctx, body.username, body.email, body.password,
                                ip=client_ip(request), display_name=body.display_name,
                                proof=proof)
    token = await auth.create_session(ctx, row["id"])
    return JSON({"account": account_json(ctx, row, private=True), "token": token},
                status_code=201)


@router.get("/accounts/challenge", summary="A sign-up proof-of-work challenge",
            response_model=SignupChallenge)
async def signup_challenge(request: Request) -> JSON:
    """Whether a sign-up from this address needs a proof now; if so a challenge, good for a
    few minutes from this address only: find its counter and send both as the sign-up's
    `proof`. A phone needs well under a second at the first difficulty."""
    return JSON(await signup_proof.challenge(get_ctx(request), client_ip(request)),
                headers={"Cache-Control": "no-store"})


@router.post("/auth/login", summary="Log in: returns a bearer token", response_model=Session,
             responses=errors(400, 401, 422, 429))
async def login(body: LoginIn, request: Request) -> JSON:
    ctx = get_ctx(request)
    token, aid = await auth.login(ctx, body.login, body.password, ip=client_ip(request))
    return JSON({"token": token, "account": account_json(ctx, await accounts.get(ctx, aid),
                                                        private=True)})


@router.post("/auth/logout", status_code=204, summary="Log out (ends this token)",
             responses=errors(401))
async def logout(request: Request,
                 cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Response:
    if cred is None:
        raise Unauthorized("log in first")
    await auth.logout(get_ctx(request), cred.credentials)
    return no_content()


@router.get("/accounts/me", summary="The logged-in account", response_model=OwnAccount,
            responses=errors(401))
async def me(request: Request, me: Viewer) -> JSON:
    ctx = get_ctx(request)
    return JSON(account_json(ctx, await accounts.get(ctx, me, conn=ctx.db), private=True))


@router.patch("/accounts/me", summary="Edit display name and bio", response_model=OwnAccount,
              responses=errors(400, 401, 422, 429))
async def edit_me(body: ProfileIn, request: Request, me: Writer) -> JSON:
    ctx = get_ctx(request)
    row = await accounts.update_profile(ctx, me, display_name=body.display_name, bio=body.bio)
    return JSON(account_json(ctx, row, private=True))


@router.post("/accounts/me/avatar", summary="Upload an avatar image", response_model=OwnAccount,
             responses=errors(400, 401, 422, 429))
async def avatar(file: UploadFile, request: Request, me: Writer) -> JSON:
    ctx = get_ctx(request)
    data = await file.read(ctx.settings.media_max_bytes + 1)
    return JSON(account_json(ctx, await accounts.set_avatar(ctx, me, data), private=True))


@router.post("/accounts/me/delete", status_code=204,
             summary="Delete the account and all it wrote (for real)",
             responses=errors(400, 401, 422, 429))
async def delete_me(body: DeleteAccountIn, request: Request, me: Writer) -> Response:
    await accounts.delete_account(get_ctx(request), me, body.password)
    return no_content()


@router.get("/accounts/by-username/{username}", summary="Look up an account by username",
            response_model=AccountView, responses=errors(401, 404, 422))
async def by_username(username: str, request: Request, me: Viewer) -> JSON:
    ctx = get_ctx(request)
    row = await accounts.get_by_username(ctx, username)
    doc = account_json(ctx, row)
    doc["relationship"] = await social.relationship(ctx, me, row["id"])
    return JSON(doc)


@router.get("/accounts/{account_id}", summary="An account's profile",
            response_model=AccountView, responses=errors(401, 404, 422))
async def get_account(account_id: str, request: Request, me: Viewer) -> JSON:
    ctx = get_ctx(request)
    row, rel = await social.profile(ctx, me, path_id(account_id, "account"))
    doc = account_json(ctx, row)
    doc["relationship"] = rel
    return JSON(doc)


async def _follow_list(request: Request, me: int, account_id: str, which: str, limit: int,
                       cursor: str | None) -> JSON:
    ctx = get_ctx(request)
    before = parse_id(cursor) if cursor else None
    if cursor and before is None:  # 19 digits past the 64-bit range: was a 500 from asyncpg
        raise Invalid("cursor: pass back the next_cursor of the previous page", field="cursor")
    items, nxt = await social.list_follows(ctx, me, path_id(account_id, "account"), which,
                                           limit=limit, before=before)
    return page(items, nxt)


@router.get("/accounts/{account_id}/followers", summary="Followers of an account",
            response_model=AccountPage, responses=errors(401, 403, 404, 422))
async def followers(account_id: str, request: Request, me: Viewer, limit: Limit = 40,
                    cursor: IdCursor = None) -> JSON:
    return await _follow_list(request, me, account_id, "followers", limit, cursor)


@router.get("/accounts/{account_id}/following", summary="Accounts an account follows",
            response_model=AccountPage, responses=errors(401, 403, 404, 422))
async def following(account_id: str, request: Request, me: Viewer, limit: Limit = 40,
                    cursor: IdCursor = None) -> JSON:
    return await _follow_list(request, me, account_id, "following", limit, cursor)


@router.post("/accounts/{account_id}/follow", summary="Follow", response_model=Followed,
             responses=errors(401, 403, 404, 422, 429))
async def follow(account_id: str, request: Request, me: Writer) -> JSON:
    made = await social.follow(get_ctx(request), me, path_id(account_id, "account"))
    return JSON({"following": True, "created": made})


@router.delete("/accounts/{account_id}/follow", summary="Unfollow", response_model=Unfollowed,
               responses=errors(401, 404, 422, 429))
async def unfollow(account_id: str, request: Request, me: Writer) -> JSON:
    await social.unfollow(get_ctx(request), me, path_id(account_id, "account"))
    return JSON({"following": False})


@router.post("/accounts/{account_id}/block", summary="Block", response_model=BlockState,
             responses=errors(401, 404, 422, 429))
async def block(account_id: str, request: Request, me: Writer) -> JSON:
    await social.block(get_ctx(request), me, path_id(account_id, "account"))
    return JSON({"blocking": True})


@router.delete("/accounts/{account_id}/block", summary="Unblock", response_model=BlockState,
               responses=errors(401, 404, 422, 429))
async def unblock(account_id: str, request: Request, me: Writer) -> JSON:
    await social.unblock(get_ctx(request), me, path_id(account_id, "account"))
    return JSON({"blocking": False})


@router.post("/accounts/{account_id}/mute", summary="Mute", response_model=MuteState,
             responses=errors(401, 404, 422, 429))
async def mute(account_id: str, request: Request, me: Writer) -> JSON:
    await social.mute(get_ctx(request), me, path_id(account_id, "account"))
    return JSON({"muting": True})


@router.delete("/accounts/{account_id}/mute", summary="Unmute", response_model=MuteState,
               responses=errors(401, 404, 422, 429))
async def unmute(account_id: str, request: Request, me: Writer) -> JSON:
    await social.unmute(get_ctx(request), me, path_id(account_id, "account"))
    return JSON({"muting": False})
