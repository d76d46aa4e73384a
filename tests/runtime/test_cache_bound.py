import pytest

from mailpulse.runtime.cache_bound import CacheBound


def test_a_bound_stays_put_while_the_contacts_read_back_are_new() -> None:
    bound = CacheBound(100, 1000)
    for start in range(0, 20_000, 500):
        bound.dropped(f"c{n}" for n in range(start, start + 500))
        bound.read_back(f"new{n}" for n in range(start, start + 500))
    assert bound.size == 100


def test_a_bound_grows_while_dropped_contacts_come_back_up_to_its_most() -> None:
    bound = CacheBound(100, 1000)
    users = [f"u{n}" for n in range(5000)]
    for _ in range(3):
        for start in range(0, len(users), 500):
            bound.dropped(users[start : start + 500])
            bound.read_back(users[start : start + 500])
    assert bound.size == 1000


def test_a_bound_needs_sensible_figures() -> None:
    with pytest.raises(ValueError, match="least <= most"):
        CacheBound(10, 5)
    with pytest.raises(ValueError, match="0 < least"):
        CacheBound(0, 5)
