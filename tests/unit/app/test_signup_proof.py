"""The sign-up proof of work's pure parts: address buckets, the difficulty schedule, the
challenge format and the reference solver (app.services.signup_proof)."""

from __future__ import annotations

import hashlib

from freehold.app.services import signup_proof as sp
from freehold.app.settings import Settings


def test_buckets_count_an_ipv6_subscriber_network_as_one_address() -> None:
    assert sp.bucket("198.51.100.7") == "198.51.100.7"
    assert sp.bucket("::ffff:198.51.100.7") == "198.51.100.7"
    assert sp.bucket("2001:db8:1:2:aaaa::1") == sp.bucket("2001:db8:1:2:ffff::9") \
        == "2001:db8:1:2::/64"
    assert sp.bucket("2001:db8:1:3::1") != sp.bucket("2001:db8:1:2::1")
    assert sp.bucket("2001:db8:1:2::1", 56) == "2001:db8:1::/56"
    assert sp.bucket("testclient") == sp.bucket("") == "-"


def test_difficulty_schedule() -> None:
    s = Settings(signup_pow_free_per_ip=5, signup_pow_min_bits=17, signup_pow_max_bits=22,
                 signup_pow_surge_per_window=10_000)
    at = [sp.difficulty(s, n, 100) for n in (0, 4.9, 5, 9.9, 10, 20, 40, 80, 160, 999)]
    assert at == [0, 0, 17, 17, 18, 19, 20, 21, 22, 22]
    assert sp.difficulty(s, 0, 10_000) == 17  # a site-wide surge: everyone proves
    assert sp.difficulty(s, 0, 40_000) == 19  # two doublings past the surge mark
    assert sp.difficulty(s.replace(signup_pow_max_bits=0), 999, 10**6) == 0  # proofs off
    assert sp.difficulty(s.replace(signup_pow_free_per_ip=0), 0, 0) == 17  # always asked


def test_defaults_are_sized_for_carrier_nat() -> None:
    s = Settings()
    assert s.rl_signup_per_ip == 1000 and s.rl_signup_window == 3600
    assert 2**s.signup_pow_min_bits <= 200_000  # ~0.2-0.5 s of a phone's JavaScript


def test_challenge_is_signed_for_its_bits_expiry_and_address() -> None:
    s = Settings(secret_key="k" * 32)
    text, expires = sp.issue(s, "198.51.100.7", 12, now=1_000_000)
    version, bits, exp, nonce, mac = text.split(".")
    assert (version, bits, exp, expires) == ("1", "12", str(1_000_000 + s.signup_pow_ttl_s),
                                             1_000_000 + s.signup_pow_ttl_s)
    assert mac == sp._mac(s, 12, expires, nonce, "198.51.100.7")
    assert mac != sp._mac(s, 12, expires, nonce, "198.51.100.8")
    assert mac != sp._mac(s.replace(secret_key="other" * 8), 12, expires, nonce, "198.51.100.7")
    assert sp.issue(s, "198.51.100.7", 12, now=1_000_000)[0] != text  # a fresh nonce each time


def test_solver_finds_the_zero_bits() -> None:
    counter = sp.solve("1.12.x.y.z", 12)
    digest = hashlib.sha256(b"1.12.x.y.z:" + str(counter).encode()).digest()
    assert sp.leading_zero_bits(digest) >= 12
    assert all(sp.leading_zero_bits(hashlib.sha256(sp.proof_input("1.12.x.y.z", n)).digest())
               < 12 for n in range(counter))
    assert sp.leading_zero_bits(b"\x00\x0f" + b"\xff" * 30) == 12
