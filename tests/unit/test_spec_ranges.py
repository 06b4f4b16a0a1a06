import pytest

from freehold.deploy.spec.ranges import RangeError, count_up, expand, expand_addresses


def test_expand_pads_to_the_width_of_a_zero_padded_start() -> None:
    names = expand("app-[001:120]")
    assert len(names) == 120
    assert names[0] == "app-001" and names[9] == "app-010" and names[-1] == "app-120"


def test_expand_without_padding_and_with_suffix() -> None:
    assert expand("n[8:11].x") == ["n8.x", "n9.x", "n10.x", "n11.x"]
    assert expand("plain") == ["plain"]


@pytest.mark.parametrize("text", ["app-[1:2]-[3:4]", "app-[a:b]", "app-[1:3", "app-1:3]"])
def test_malformed_ranges_are_refused(text: str) -> None:
    with pytest.raises(RangeError, match="is not a range"):
        expand(text)


def test_backwards_range_says_how_to_fix() -> None:
    with pytest.raises(RangeError, match=r"runs backwards .* write \[1:9\]"):
        expand("x-[9:1]")


def test_address_range_must_match_the_names() -> None:
    assert expand_addresses("203.0.113.[10:12]", 3) == ["203.0.113.10", "203.0.113.11",
                                                        "203.0.113.12"]
    with pytest.raises(RangeError, match="exhausted: 91 addresses for 120 names"):
        expand_addresses("203.0.113.[10:100]", 120)
    with pytest.raises(RangeError, match="longer than the name range"):
        expand_addresses("203.0.113.[10:20]", 3)
    with pytest.raises(RangeError, match="one address .* for 3 names"):
        expand_addresses("203.0.113.10", 3)
    with pytest.raises(RangeError, match="not an IPv4 address"):
        expand_addresses("203.0.113.[250:300]", 51)


def test_count_up_crosses_octets_and_runs_out() -> None:
    assert count_up("10.0.0.254", 3) == ["10.0.0.254", "10.0.0.255", "10.0.1.0"]
    with pytest.raises(RangeError, match="exhausted"):
        count_up("255.255.255.250", 10)
