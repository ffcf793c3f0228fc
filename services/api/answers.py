"""Serialized answers kept between requests, each with the version of the data it was built from.

An answer is served again only while the version its request reads is still the one it was built
at, so it is never staler than a fresh read would be. Building some answers costs far more than
reading a version (a run's downsampled metrics: 2,000 rows read and serialized; a run's events:
a consumer on the stream), and most reads ask again for what has not changed.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar, cast

from fastapi import Response

# A few dozen answers of the largest kind (10,000 metric points, about 2 MB each).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# What an answer is counted beyond its body (its key, its version, the bookkeeping): so that many
# tiny answers (empty pages of any `after_seq`) are bounded too.
ENTRY_BYTES = 1024

# An answer may be a subclass of bytes that carries more than its body (what its headers say).
Body = TypeVar("Body", bound=bytes)


class Answers:
    """The most recently used answers, up to `max_bytes` in all (each counted `ENTRY_BYTES` more
    than its body)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[Hashable, tuple[Hashable, bytes]] = OrderedDict()
        self._bytes = 0
        self._building: dict[tuple[Hashable, Hashable], asyncio.Task[bytes]] = {}

    async def get_or_build(self, key: Hashable, version: Hashable, build: Callable[[], Awaitable[Body]]) -> Body:
        """The answer kept for `key` at `version`, else the one `build` makes. Requests that ask
        while it is being built wait for that one build: after a change, a burst of them would
        otherwise each build the same answer."""
        kept = self._kept.get(key)
        if kept is not None and kept[0] == version:
            self._kept.move_to_end(key)
            # A key is always built by the same kind of `build`: what is kept for it is its `Body`.
            return cast(Body, kept[1])
        building = self._building.get((key, version))
        if building is None:
            building = asyncio.create_task(self._build(key, version, build))
            # Every waiting request may have gone: the failure is theirs to see, not the event loop's.
            building.add_done_callback(lambda task: task.cancelled() or task.exception())
            self._building[(key, version)] = building
        # Shielded: one waiting request that goes away must not cancel the build for the others.
        return cast(Body, await asyncio.shield(building))

    async def _build(self, key: Hashable, version: Hashable, build: Callable[[], Awaitable[bytes]]) -> bytes:
        try:
            body = await build()
        finally:
            del self._building[(key, version)]
        self._keep(key, version, body)
        return body

    def _keep(self, key: Hashable, version: Hashable, body: bytes) -> None:
        if (replaced := self._kept.pop(key, None)) is not None:
            self._bytes -= len(replaced[1]) + ENTRY_BYTES
        if len(body) + ENTRY_BYTES > self.max_bytes:
            return
        self._kept[key] = (version, body)
        self._bytes += len(body) + ENTRY_BYTES
        while self._bytes > self.max_bytes:
            _, (_, evicted) = self._kept.popitem(last=False)
            self._bytes -= len(evicted) + ENTRY_BYTES


def json_answer(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")
