"""The brief cache the estate's latest is served from: a body per key, made once per period."""

from __future__ import annotations

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
