from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from events.bus import Bus
from services.settings import Settings


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    bus = await Bus.connect(settings.nats_url, settings.namespace)
    await bus.ensure()
    yield bus
    await bus.close()
