"""A stream poisoned by an earlier Cadenza (it published a dataset name holding a NUL, which
PostgreSQL refuses) recovers on upgrade: the registry parks that event, and the system serves."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from events.bus import Bus
from services.settings import Settings

POISONED = Path(__file__).parent / "fixtures" / "dataset_created_with_nul.json"
POISONED_DATASET = "8d5b1f3e-0c7a-4a55-9d0e-2b7f3c1e9a01"


@pytest.fixture
async def poisoned_seq(settings: Settings) -> AsyncIterator[int]:
    """The stored bytes, published before the API and the registry start (requested before them)."""
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    try:
        await bus.ensure()
        subject = f"{bus.subject_root}.dataset.{POISONED_DATASET}.dataset_created"
        ack = await bus.js.publish(subject, POISONED.read_bytes(), stream=bus.stream)
        yield ack.seq
    finally:
        await bus.close()


async def test_a_stream_with_a_poisoned_event_starts_parks_it_and_serves(poisoned_seq, settings, api, client):
    dataset = await api.dataset(name="after the upgrade")  # answered only once the registry folded it

    letters = (await client.get("/api/dead-letters")).json()
    assert [(letter["seq"], letter["type"]) for letter in letters] == [(poisoned_seq, "DatasetCreated")]
    assert "CharacterNotInRepertoireError" in letters[0]["error"]
    assert letters[0]["subject"] == f"{settings.namespace}.dataset.{POISONED_DATASET}.dataset_created"
    assert [d["id"] for d in (await client.get("/api/datasets")).json()] == [dataset["id"]]
    assert (await client.get(f"/api/datasets/{POISONED_DATASET}")).status_code == 404
