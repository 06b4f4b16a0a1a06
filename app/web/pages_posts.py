"""Web pages: home feed, compose (text + up to 4 images), thread, reply, echo, upvote, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from freehold.app.api.deps import get_ctx, path_id
from freehold.app.services import feed, posts
from freehold.app.services.errors import Invalid, ServiceError
from freehold.app.services.text import check_body
from freehold.app.web.render import render
from freehold.app.web.session import (
    checked_form,
    current_viewer,
    require_viewer,
    safe_next,
    text_field,
)

router = APIRouter(include_in_schema=False)


def redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303)


@router.get("/")
async def home(request: Request, cursor: str | None = None) -> Response:
    me = await current_viewer(request)
    if me is None:
        return redirect("/login")
    items, nxt = await feed.home(get_ctx(request), me.id, limit=30, cursor=cursor or None)
    return await render(request, "home.html", posts=items, next_cursor=nxt,
                        first_page=not cursor)


def _images(form: FormData) -> list[UploadFile]:
    return [f for f in form.getlist("images")
            if isinstance(f, UploadFile) and f.filename and (f.size is None or f.size > 0)]


async def _compose_error(request: Request, exc: ServiceError, body: str,
                         reply_to: str | None) -> Response:
    parent = None
    if reply_to:
        me = await require_viewer(request)
        try:
            parent = await posts.get_post(get_ctx(request), me.id, path_id(reply_to, "post"))
        except ServiceError:
            parent = None
    return await render(request, "compose.html", exc.status, error=exc, body=body,
                        reply_to=reply_to, parent=parent)


@router.get("/compose")
async def compose_page(request: Request, reply_to: str | None = None) -> Response:
    me = await require_viewer(request)
    parent = None
    if reply_to:
        parent = await posts.get_post(get_ctx(request), me.id, path_id(reply_to, "post"))
    return await render(request, "compose.html", body="", reply_to=reply_to, parent=parent)


@router.post("/compose")
async def compose(request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    ctx = get_ctx(request)
    body = text_field(form, "body")
    reply_to = text_field(form, "reply_to") or None
    images = _images(form)
    try:
        if len(images) > ctx.settings.post_max_images:
            raise Invalid(f"{len(images)} images: at most {ctx.settings.post_max_images} per "
                          f"post", field="images")
        # check the text before storing any image
        check_body(body, ctx.settings.post_max_chars, allow_empty=bool(images))
        media_ids = []
        for f in images:
            data = await f.read(ctx.settings.media_max_bytes + 1)
            up = await posts.upload_media(ctx, me.id, data)
            media_ids.append(up["id"])
        doc = await posts.create_post(ctx, me.id, body, reply_to=reply_to, media_ids=media_ids)
    except ServiceError as exc:
        return await _compose_error(request, exc, body, reply_to)
    if reply_to:
        return redirect(f"/p/{reply_to}#p{doc['id']}")
    return redirect(safe_next(text_field(form, "next"), "/"))


@router.get("/p/{post_id}")
async def thread_page(post_id: str, request: Request, cursor: str | None = None) -> Response:
    me = await require_viewer(request)
    t = await posts.thread(get_ctx(request), me.id, path_id(post_id, "post"), cursor=cursor)
    return await render(request, "thread.html", thread=t, post=t["post"])


@router.get("/p/{post_id}/echo")
async def echo_page(post_id: str, request: Request) -> Response:
    me = await require_viewer(request)
    post = await posts.get_post(get_ctx(request), me.id, path_id(post_id, "post"))
    return await render(request, "echo.html", post=post, body="")


@router.post("/p/{post_id}/echo")
async def echo(post_id: str, request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    ctx = get_ctx(request)
    pid = path_id(post_id, "post")
    body = text_field(form, "body")
    try:
        await posts.create_post(ctx, me.id, body, echo_of=pid)
    except ServiceError as exc:
        post = await posts.get_post(ctx, me.id, pid)
        return await render(request, "echo.html", exc.status, post=post, body=body, error=exc)
    return redirect(safe_next(text_field(form, "next"), "/"))


@router.post("/p/{post_id}/upvote")
async def upvote(post_id: str, request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    ctx = get_ctx(request)
    pid = path_id(post_id, "post")
    if text_field(form, "undo"):
        await posts.remove_upvote(ctx, me.id, pid)
    else:
        await posts.upvote(ctx, me.id, pid)
    return redirect(safe_next(text_field(form, "next"), f"/p/{pid}") + f"#p{pid}")


@router.post("/p/{post_id}/delete")
async def delete(post_id: str, request: Request) -> Response:
    form = await checked_form(request)
    me = await require_viewer(request)
    await posts.delete_post(get_ctx(request), me.id, path_id(post_id, "post"))
    nxt = safe_next(text_field(form, "next"), "/")
    if nxt.startswith(f"/p/{post_id}"):
        nxt = "/"  # the thread page of a deleted post is gone
    return redirect(nxt)

