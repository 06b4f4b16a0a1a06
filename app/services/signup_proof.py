"""Proof of effort for sign-up bursts: a stateless hashcash-style proof of work.

Why (docs/signup-limits.md has the whole story): a hard cap per address blocks whole mobile
carriers, whose carrier-grade NAT puts thousands of phones behind one address, exactly when a
surge of newcomers arrives. So the per-address cap is only a backstop sized for NAT
(`rl_signup_per_ip`), and past a small free allowance each sign-up costs the client some hashing
instead: a phone pays well under a second, a script making thousands of accounts pays for each.

Protocol (the same for the web form's script and API clients):
- `GET /api/v1/accounts/challenge` says whether a proof is required now and, if so, gives a
  challenge `1.<bits>.<expires>.<nonce>.<mac>`: the MAC (HMAC-SHA256 under a key derived from
  `secret_key`) covers the bits, the expiry, the random nonce and the client's address bucket,
  so the server keeps no state per challenge and a challenge works only from where it was fetched.
- The client finds a counter (decimal, from 0) such that SHA-256(challenge ":" counter) starts
  with `bits` zero bits: 2**bits hashes on average.
- The sign-up carries {challenge, counter}. Checking costs one HMAC and one SHA-256; a challenge
  is spent in Redis (SET NX until it expires) so it cannot be replayed.
- Difficulty: none while the address bucket made fewer than `signup_pow_free_per_ip` sign-ups in
  the window and the whole site fewer than `signup_pow_surge_per_window`; then
  `signup_pow_min_bits`, one bit more (twice the work) each time the bucket's count doubles past
  the free allowance and, during a site-wide surge, each time the site's count doubles past the
  surge mark; never above `signup_pow_max_bits`. Counts are sliding-window estimates.

An address bucket is the IPv4 address, or the IPv6 /`signup_ipv6_prefix` (one subscriber
usually holds a whole /64, so counting single IPv6 addresses would count nothing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from freehold.app.services.errors import Invalid

if TYPE_CHECKING:
    from freehold.app.context import Ctx
    from freehold.app.settings import Settings

ALGORITHM = "sha256-leading-zero-bits"
VERSION = "1"
# a challenge stays good while the required difficulty rises by this many bits after it was
# issued (a surge may double the rate between fetching and sending; a stockpile of cheap
# challenges from a quiet hour is refused once the rate has doubled twice)
SLACK_BITS = 1
COUNTER_MAX = 2**53 - 1  # what a JavaScript number holds exactly


class ProofRefused(Invalid):
    """A sign-up without a valid proof where one is required (422, field `proof`)."""

    code = "proof_refused"

    def __init__(self, message: str) -> None:
        super().__init__(f"proof: {message}", field="proof")


@dataclass(frozen=True)
class Proof:
    """What a client sends back: the challenge as issued and the counter it found."""

    challenge: str
    counter: int | str


def bucket(ip: str, ipv6_prefix: int = 64) -> str:
    """The address bucket sign-ups are counted by: the IPv4 address, an IPv6 network."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "-"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        net = ipaddress.IPv6Network((addr, max(0, min(128, ipv6_prefix))), strict=False)
        return str(net)
    return str(addr)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _key(settings: Settings) -> bytes:
    # a key of its own, derived from the app's secret: a MAC made for CSRF never passes here
    return hmac.new(settings.secret_key.encode(), b"freehold signup proof v1",
                    hashlib.sha256).digest()


def _mac(settings: Settings, bits: int, expires: int, nonce: str, where: str) -> str:
    msg = f"{VERSION}|{bits}|{expires}|{nonce}|{where}".encode()
    return _b64(hmac.new(_key(settings), msg, hashlib.sha256).digest())


def issue(settings: Settings, where: str, bits: int, now: float | None = None) -> tuple[str, int]:
    """A signed challenge of `bits` for address bucket `where`, and its expiry (Unix time)."""
    expires = int(now if now is not None else time.time()) + settings.signup_pow_ttl_s
    nonce = _b64(secrets.token_bytes(16))
    return f"{VERSION}.{bits}.{expires}.{nonce}.{_mac(settings, bits, expires, nonce, where)}", \
        expires


def proof_input(challenge: str, counter: int | str) -> bytes:
    """The bytes whose SHA-256 must start with the zero bits: challenge ":" counter."""
    return f"{challenge}:{counter}".encode()


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def solve(challenge: str, bits: int) -> int:
    """The first counter that solves `challenge` (the reference client: tests, scripts)."""
    base = hashlib.sha256(f"{challenge}:".encode())
    counter = 0
    while True:
        h = base.copy()
        h.update(str(counter).encode())
        if leading_zero_bits(h.digest()) >= bits:
            return counter
        counter += 1


def doublings(count: float, mark: float) -> int:
    """How many times `count` doubled past `mark` (0 below it)."""
    return int(math.floor(math.log2(count / mark))) if mark > 0 and count >= mark else 0


def difficulty(settings: Settings, mine: float, everyone: float) -> int:
    """Zero bits required of a sign-up from a bucket with `mine` recent sign-ups while the whole
    site had `everyone` (0: no proof needed)."""
    s = settings
    if s.signup_pow_max_bits <= 0:
        return 0
    surge = s.signup_pow_surge_per_window
    surging = surge > 0 and everyone >= surge
    if mine < s.signup_pow_free_per_ip and not surging:
        return 0
    bits = (s.signup_pow_min_bits + doublings(mine, max(1, s.signup_pow_free_per_ip))
            + (doublings(everyone, surge) if surging else 0))
    return max(1, min(bits, s.signup_pow_max_bits))


def _slot_keys(where: str, slot: int) -> tuple[str, str, str, str]:
    return (f"su:ip:{where}:{slot}", f"su:ip:{where}:{slot - 1}",
            f"su:all:{slot}", f"su:all:{slot - 1}")


async def recent(ctx: Ctx, where: str, now: float | None = None) -> tuple[float, float]:
    """Sign-ups in the last window (sliding estimate: this fixed window plus the share of the
    previous one still inside it), from bucket `where` and from everyone."""
    window = ctx.settings.rl_signup_window
    now = time.time() if now is None else now
    slot = int(now // window)
    left = 1.0 - (now - slot * window) / window
    pipe = ctx.redis.pipeline(transaction=False)
    for key in _slot_keys(where, slot):
        pipe.get(key)
    cur, prev, all_cur, all_prev = (int(v or 0) for v in await pipe.execute())
    return cur + prev * left, all_cur + all_prev * left


async def counted(ctx: Ctx, where: str) -> None:
    """Count one sign-up made from bucket `where` (after it succeeded)."""
    window = ctx.settings.rl_signup_window
    slot = int(time.time() // window)
    pipe = ctx.redis.pipeline(transaction=False)
    for key in _slot_keys(where, slot)[::2]:
        pipe.incr(key)
        pipe.expire(key, 2 * window + 1, nx=True)
    await pipe.execute()


async def required_bits(ctx: Ctx, ip: str) -> tuple[str, int]:
    where = bucket(ip, ctx.settings.signup_ipv6_prefix)
    mine, everyone = await recent(ctx, where)
    return where, difficulty(ctx.settings, mine, everyone)


async def challenge(ctx: Ctx, ip: str) -> dict[str, Any]:
    """The answer of the challenge endpoint for a client at `ip`."""
    where, bits = await required_bits(ctx, ip)
    doc: dict[str, Any] = {"required": bits > 0, "algorithm": ALGORITHM, "difficulty": bits,
                           "challenge": None, "expires_at": None}
    if bits:
        doc["challenge"], doc["expires_at"] = issue(ctx.settings, where, bits)
    return doc


async def check(ctx: Ctx, ip: str, proof: Proof | None) -> str | None:
    """Refuse (ProofRefused) a sign-up from `ip` that needs a proof and lacks a valid one; spend
    the challenge. Returns the spent challenge's Redis key (to give it back if the sign-up then
    fails on a taken name), or None when no proof was needed."""
    where, required = await required_bits(ctx, ip)
    if not required:
        return None
    if proof is None or not proof.challenge:
        raise ProofRefused(
            "many sign-ups come from your network right now: get a challenge from "
            "GET /api/v1/accounts/challenge, find its counter and send proof "
            "{challenge, counter}")
    parts = proof.challenge.split(".")
    if len(parts) != 5 or parts[0] != VERSION or not parts[1].isdigit() \
            or not parts[2].isdigit():
        raise ProofRefused("not a challenge of this server: get a new one")
    bits, expires, nonce, mac = int(parts[1]), int(parts[2]), parts[3], parts[4]
    if not hmac.compare_digest(mac, _mac(ctx.settings, bits, expires, nonce, where)):
        raise ProofRefused("this challenge was not issued to your address: get a new one")
    if expires < time.time():
        raise ProofRefused("the challenge expired: get a new one")
    if bits + SLACK_BITS < required:
        raise ProofRefused(f"sign-ups from your network rose: {required} bits are needed now, "
                           f"the challenge has {bits}: get a new one")
    counter = str(proof.counter)
    if not counter.isascii() or not counter.isdigit() or len(counter) > 16 \
            or int(counter) > COUNTER_MAX \
            or leading_zero_bits(hashlib.sha256(proof_input(proof.challenge, counter)).digest()
                                 ) < bits:
        raise ProofRefused("the counter does not solve the challenge")
    spent = f"su:spent:{nonce}"
    if not await ctx.redis.set(spent, "1", nx=True, exat=expires + 1):
        raise ProofRefused("this challenge was already used: get a new one")
    return spent


async def give_back(ctx: Ctx, spent: str | None) -> None:
    """Un-spend a challenge whose sign-up created no account (a name already taken)."""
    if spent:
        await ctx.redis.delete(spent)
