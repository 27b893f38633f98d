"""JSON with repeated keys made visible: ``json.loads`` keeps the last value of a repeated key without a
word, so ``{"close": 1.1, "close": 110}`` would be read as 110. Here such an object is marked
(:class:`DuplicateKeys`, a dict) so a parser can refuse what it belongs to. Any JSON feed can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class DuplicateKeys(dict):
    """A JSON object that repeated a key; ``duplicates`` lists the repeated keys (its value is the last one)."""

    duplicates: list[str]


def _hook(found: list[int]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) == len(pairs):
            return out
        seen: set[str] = set()
        marked = DuplicateKeys(out)
        marked.duplicates = list(dict.fromkeys(k for k, _ in pairs if k in seen or seen.add(k)))
        found[0] += 1
        return marked

    return hook


def loads_marking_duplicates(text: str, **kwargs: Any) -> tuple[Any, bool]:
    """``json.loads(text, **kwargs)`` whose objects that repeat a key are :class:`DuplicateKeys`; also
    whether there was any (so a caller need not look when there was none). Errors are ``json.loads``'s."""
    import json

    found = [0]
    return json.loads(text, object_pairs_hook=_hook(found), **kwargs), found[0] > 0


def duplicate_keys(value: Any) -> list[str]:
    """Keys repeated in ``value`` or in any object nested in it (empty: none), first seen first."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, DuplicateKeys):
            found += item.duplicates
        if isinstance(item, dict):
            stack += [v for v in item.values() if isinstance(v, (dict, list))]
        elif isinstance(item, list):
            stack += [v for v in item if isinstance(v, (dict, list))]
    return list(dict.fromkeys(found))
