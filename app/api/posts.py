"""/api/v1: posts, images, threads, echoes, upvotes."""

from __future__ import annotations

from fastapi import APIRouter, Request, UploadFile
from fastapi.responses import Response

from freehold.app.api.deps import (
    JSON,
    IdCursor,
    Limit,
    Viewer,
    Writer,
    get_ctx,
    no_content,
    path_id,
)
from freehold.app.api.models import EchoIn, PostIn
from freehold.app.api.schemas import DocJSON, Media, Post, Thread, UpvoteState, errors
from freehold.app.services import posts

router = APIRouter(tags=["posts"], default_response_class=DocJSON)


@router.post("/media", status_code=201, summary="Upload an image (attach up to 4 to a post)",
             response_model=Media, responses=errors(400, 401, 403, 422, 429))
async def upload(file: UploadFile, request: Request, me: Writer) -> JSON:
    ctx = get_ctx(request)
    data = await file.read(ctx.settings.media_max_bytes + 1)
    return JSON(await posts.upload_media(ctx, me, data), status_code=201)


@router.post("/posts", status_code=201, summary="Write a post or a reply", response_model=Post,
             responses=errors(400, 401, 403, 404, 422, 429))
async def create(body: PostIn, request: Request, me: Writer) -> JSON:
    doc = await posts.create_post(get_ctx(request), me, body.body, reply_to=body.reply_to_id,
                                  media_ids=body.media_ids)
    return JSON(doc, status_code=201)


@router.get("/posts/{post_id}", summary="One post", response_model=Post,
            responses=errors(401, 403, 404, 422))
async def get(post_id: str, request: Request, me: Viewer) -> JSON:
    return JSON(await posts.get_post(get_ctx(request), me, path_id(post_id, "post")))


@router.delete("/posts/{post_id}", status_code=204, summary="Delete one's own post (for real)",
               responses=errors(401, 403, 404, 422, 429))
async def delete(post_id: str, request: Request, me: Writer) -> Response:
    await posts.delete_post(get_ctx(request), me, path_id(post_id, "post"))
    return no_content()


@router.get("/posts/{post_id}/thread",
            summary="A post, its ancestors and a page of its replies (oldest first)",
            response_model=Thread, responses=errors(401, 403, 404, 422))
async def thread(post_id: str, request: Request, me: Viewer, limit: Limit = 50,
                 cursor: IdCursor = None) -> JSON:
    return JSON(await posts.thread(get_ctx(request), me, path_id(post_id, "post"), limit,
                                   cursor))


@router.post("/posts/{post_id}/echo", status_code=201, summary="Echo (repost), optional comment",
             response_model=Post, responses=errors(400, 401, 403, 404, 409, 422, 429))
async def echo(post_id: str, body: EchoIn, request: Request, me: Writer) -> JSON:
    doc = await posts.create_post(get_ctx(request), me, body.body,
                                  echo_of=path_id(post_id, "post"))
    return JSON(doc, status_code=201)


@router.post("/posts/{post_id}/upvote", summary="Upvote", response_model=UpvoteState,
             responses=errors(401, 403, 404, 422, 429))
async def upvote(post_id: str, request: Request, me: Writer) -> JSON:
    n = await posts.upvote(get_ctx(request), me, path_id(post_id, "post"))
    return JSON({"upvoted": True, "upvotes_count": n})


@router.delete("/posts/{post_id}/upvote", summary="Remove one's upvote",
               response_model=UpvoteState, responses=errors(401, 404, 422, 429))
async def remove_upvote(post_id: str, request: Request, me: Writer) -> JSON:
    n = await posts.remove_upvote(get_ctx(request), me, path_id(post_id, "post"))
    return JSON({"upvoted": False, "upvotes_count": n})
