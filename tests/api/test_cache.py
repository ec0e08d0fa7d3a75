"""The brief cache the estate's latest is served from: a body per key, made once per period."""

from __future__ import annotations

import time
from functools import partial

from api.cache import BriefCache


def test_a_body_is_made_once_per_key_while_fresh() -> None:
    cache = BriefCache(ttl_s=3600)
    made: list[str] = []

    def make(text: str):
        def body() -> str:
            made.append(text)
            return text

        return body

    assert cache.get(("env", ("north",)), make("north 1")) == "north 1"
    assert cache.get(("env", ("north",)), make("north 2")) == "north 1"  # served again
    assert cache.get(("bin", None), make("bins")) == "bins"  # another scope, its own body
    assert made == ["north 1", "bins"]


def test_with_no_period_every_call_asks() -> None:
    cache = BriefCache(ttl_s=0)
    assert [cache.get("k", partial(str, n)) for n in range(3)] == ["0", "1", "2"]


def test_a_full_table_starts_again_rather_than_growing() -> None:
    cache = BriefCache(ttl_s=3600, max_entries=2)
    for key in "abc":
        cache.get(key, partial(str, key))
    assert cache.get("a", lambda: "a again") == "a again"  # forgotten when c came
    assert cache.get("c", lambda: "c again") == "c"


def test_a_stale_body_is_served_while_one_caller_remakes_it() -> None:
    cache = BriefCache(ttl_s=0.05)
    cache.put("north", "old")
    time.sleep(0.06)
    assert cache.fresh("north") is None  # past its period
    assert cache.stale("north") == "old"  # but still there to serve
    assert cache.claim("north")  # this caller remakes it...
    assert not cache.claim("north")  # ...and nobody else meanwhile
    assert cache.stale("north") == "old"
    cache.put("north", "new")  # ends the claim
    assert cache.fresh("north") == "new"
    assert cache.claim("north")  # the next period's remaking can be claimed again
    cache.release("north")


def test_with_no_period_nothing_stale_is_served() -> None:
    cache = BriefCache(ttl_s=0)
    cache.get("k", lambda: "0")
    assert cache.stale("k") is None
