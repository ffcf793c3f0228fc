"""The ids a keyed command gives what it creates are the same on every try of it."""
from __future__ import annotations

from services.api.context import ResourceIds

SCOPE = "POST /api/datasets draw-once"


def test_items_drawn_from_sources_keep_their_ids_when_a_retry_finds_more_sources() -> None:
    first = [ResourceIds(SCOPE).drawn_from(source) for source in ("sample b", "sample c")]
    retry = [ResourceIds(SCOPE).drawn_from(source) for source in ("sample a", "sample b", "sample c")]

    assert retry[1:] == first
    assert len(set(retry)) == 3
    assert ResourceIds("POST /api/datasets another-key").drawn_from("sample b") not in retry
    assert ResourceIds().drawn_from("sample b") != ResourceIds().drawn_from("sample b")  # no key: random
