"""Accounts through the API: sign-up rules, log in/out, profile, avatar, deletion, verified."""

from __future__ import annotations

import io
import struct
import zlib

import psycopg
from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY
from starlette.testclient import TestClient

from freehold.app.services import passwords
from freehold.app.settings import Settings
from tests.integration.app.conftest import make_admin, new_user


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"\x00\xff\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_signup_rules(client: TestClient) -> None:
    bad = [({"username": "ab"}, "username"), ({"username": "has space"}, "username"),
           ({"username": "admin"}, "username"), ({"email": "nope"}, "email"),
           ({"password": "short"}, "password")]
    for change, field in bad:
        body = {"username": "okname_1", "email": "ok@example.org", "password": "long enough",
                **change}
        r = client.post("/api/v1/accounts", json=body)
        assert r.status_code == 422, (change, r.text)
        assert r.json()["field"] == field
    u = new_user(client, "dup")
    r = client.post("/api/v1/accounts", json={"username": u.username.upper(),
                                              "email": "other@example.org",
                                              "password": "long enough"})
    assert r.status_code == 409 and r.json()["field"] == "username"


def test_login_logout_and_wrong_password(client: TestClient) -> None:
    u = new_user(client, "login")
    r = client.post("/api/v1/auth/login", json={"login": u.username, "password": "wrong pass"})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    r = client.post("/api/v1/auth/login", json={"login": "nobody_here_x", "password": "whatever1"})
    assert r.status_code == 401
    r = client.post("/api/v1/auth/login", json={"login": f"{u.username}@example.org",
                                                "password": u.password})
    assert r.status_code == 200
    token = r.json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/accounts/me", headers=h).json()["username"] == u.username
    assert client.post("/api/v1/auth/logout", headers=h).status_code == 204
    assert client.get("/api/v1/accounts/me", headers=h).status_code == 401
    # the sign-up token still works: logout ends one session only
    assert client.get("/api/v1/accounts/me", headers=u.h).status_code == 200
    assert client.get("/api/v1/accounts/me").status_code == 401


def test_old_password_hash_logs_in_and_is_rehashed(client: TestClient,
                                                   app_settings: Settings) -> None:
    """A hash made with argon2-cffi's default parameters (the app's before OWASP's) still logs
    in, and the successful log-in stores a hash with today's parameters."""
    u = new_user(client, "rehash")
    old = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY).hash(u.password)
    assert passwords.needs_rehash(old)

    def stored() -> str:
        with psycopg.connect(app_settings.database_url) as conn:
            row = conn.execute("SELECT password_hash FROM accounts WHERE id = %s",
                               (int(u.id),)).fetchone()
        assert row is not None
        return str(row[0])

    with psycopg.connect(app_settings.database_url) as conn:
        conn.execute("UPDATE accounts SET password_hash = %s WHERE id = %s", (old, int(u.id)))
    r = client.post("/api/v1/auth/login", json={"login": u.username, "password": "wrong pass"})
    assert r.status_code == 401
    assert stored() == old  # a failed log-in changes nothing
    r = client.post("/api/v1/auth/login", json={"login": u.username, "password": u.password})
    assert r.status_code == 200, r.text
    new = stored()
    assert new != old and not passwords.needs_rehash(new)
    assert new.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.hasher.verify(new, u.password)
    r = client.post("/api/v1/auth/login", json={"login": u.username, "password": u.password})
    assert r.status_code == 200 and stored() == new  # a current hash is kept


def test_profile_and_avatar(client: TestClient) -> None:
    u = new_user(client, "prof")
    r = client.patch("/api/v1/accounts/me", headers=u.h,
                     json={"display_name": "Ada  Lovelace", "bio": "<b>math</b>"})
    assert r.status_code == 200
    assert r.json()["display_name"] == "Ada Lovelace" and r.json()["bio"] == "<b>math</b>"
    assert client.patch("/api/v1/accounts/me", headers=u.h,
                        json={"display_name": "x" * 51}).status_code == 422
    r = client.post("/api/v1/accounts/me/avatar", headers=u.h,
                    files={"file": ("a.txt", io.BytesIO(b"not an image"), "image/png")})
    assert r.status_code == 422 and r.json()["field"] == "file"
    png = tiny_png()
    r = client.post("/api/v1/accounts/me/avatar", headers=u.h,
                    files={"file": ("a.png", io.BytesIO(png), "image/png")})
    assert r.status_code == 200, r.text
    url = r.json()["avatar_url"]
    assert url.startswith("/media/avatars/")
    got = client.get(url)
    assert got.status_code == 200 and got.content == png
    assert got.headers["content-type"] == "image/png"


def test_verified_badge_set_by_admin_only(client: TestClient) -> None:
    admin = make_admin(client)
    u = new_user(client, "ver")
    other = new_user(client, "ver")
    r = client.put(f"/api/v1/admin/accounts/{u.id}/verified", headers=other.h,
                   json={"value": True})
    assert r.status_code == 403
    r = client.put(f"/api/v1/admin/accounts/{u.id}/verified", headers=admin.h,
                   json={"value": True})
    assert r.status_code == 200 and r.json()["verified"] is True
    assert client.get(f"/api/v1/accounts/{u.id}", headers=other.h).json()["verified"] is True
    audit = client.get("/api/v1/admin/audit", headers=admin.h).json()["items"]
    assert any(a["action"] == "account.verified" and a["target_id"] == u.id for a in audit)


def test_delete_account_removes_everything(client: TestClient) -> None:
    u = new_user(client, "gone")
    friend = new_user(client, "gone")
    client.post(f"/api/v1/accounts/{u.id}/follow", headers=friend.h)
    png = tiny_png()
    media = client.post("/api/v1/media", headers=u.h,
                        files={"file": ("p.png", io.BytesIO(png), "image/png")}).json()
    post = client.post("/api/v1/posts", headers=u.h,
                       json={"body": "bye #farewell", "media_ids": [media["id"]]}).json()
    assert client.get(media["url"]).status_code == 200
    assert client.post("/api/v1/accounts/me/delete", headers=u.h,
                       json={"password": "wrong one!"}).status_code == 401
    assert client.post("/api/v1/accounts/me/delete", headers=u.h,
                       json={"password": u.password}).status_code == 204
    assert client.get(f"/api/v1/posts/{post['id']}", headers=friend.h).status_code == 404
    assert client.get(f"/api/v1/accounts/{u.id}", headers=friend.h).status_code == 404
    assert client.get(media["url"]).status_code == 404  # the image is gone from S3 too
    assert client.get("/api/v1/accounts/me", headers=u.h).status_code == 401
    me = client.get("/api/v1/accounts/me", headers=friend.h).json()
    assert me["following_count"] == 0
    r = client.post("/api/v1/auth/login", json={"login": u.username, "password": u.password})
    assert r.status_code == 401


def test_unknown_ids_are_404_not_500(client: TestClient) -> None:
    u = new_user(client, "ids")
    for path in ("/api/v1/accounts/99999999999999999999", "/api/v1/accounts/abc",
                 "/api/v1/posts/9223372036854775808", "/api/v1/posts/0",
                 "/api/v1/posts/123/thread"):
        assert client.get(path, headers=u.h).status_code == 404, path
