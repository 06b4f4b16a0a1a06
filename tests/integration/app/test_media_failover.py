"""Images through more than one S3 gateway (the media-kill drill): a gateway that cannot
answer is passed over for the next, an image missing everywhere is "no such media" (404), and
no gateway answering is 503 with Retry-After — never a 404 that makes a user's app drop the
image, nor a 500. Real SeaweedFS; the dead gateway is a closed port on loopback."""

from __future__ import annotations

import asyncio
import os

import pytest
from starlette.testclient import TestClient

from freehold.app.devstack import SeaweedS3, free_port
from freehold.app.main import create_app
from freehold.app.services.errors import NotFound, Unavailable
from freehold.app.services.media import MediaStore
from freehold.app.settings import Settings

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(64)


def store(settings: Settings, endpoints: str) -> MediaStore:
    media = MediaStore.from_settings(settings.replace(s3_endpoint=endpoints))
    media.ensure_bucket_sync()  # through the second gateway when the first is dead
    return media


def test_the_next_gateway_serves_when_the_first_cannot_answer(app_settings: Settings,
                                                              s3_server: SeaweedS3) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    both = store(app_settings, f"{dead},{s3_server.endpoint}")
    assert len(both.clients) == 2
    key = f"media/failover-{os.urandom(4).hex()}.png"
    asyncio.run(both.put(key, PNG, "image/png"))  # the dead one first: written through the next
    assert asyncio.run(both.get(key)) == PNG
    with pytest.raises(NotFound):
        asyncio.run(both.get(f"media/missing-{os.urandom(4).hex()}.png"))
    # no gateway answers: unavailable for a moment, not missing
    alone = MediaStore.from_settings(app_settings.replace(s3_endpoint=dead))
    with pytest.raises(Unavailable) as got:
        asyncio.run(alone.get(key))
    assert got.value.status == 503 and got.value.retry_after >= 1
    with pytest.raises(Unavailable):
        asyncio.run(alone.put(key, PNG, "image/png"))


def test_the_api_answers_503_with_retry_after_when_no_gateway_answers(
        app_settings: Settings) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with TestClient(create_app(app_settings.replace(s3_endpoint=dead)),
                    raise_server_exceptions=False) as c:
        r = c.get("/media/media/12345.png")
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"] == "unavailable"
