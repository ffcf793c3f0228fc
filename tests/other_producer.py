"""Another producer on the stream (an older client, a script, a bug): what it writes skips the API's
checks, so the tests play it to show what the services make of events the API would refuse."""
from __future__ import annotations

import hashlib
import uuid

from events.base import AudioFile
from events.bus import Bus
from events.catalogue import ClipAdded


async def add_clip_behind_the_apis_back(bus: Bus, dataset_id: str, data: bytes, filename: str) -> ClipAdded:
    ref = await bus.put_object(bus.clips_bucket, f"{hashlib.sha256(data).hexdigest()}.wav", data)
    audio = AudioFile(**ref.model_dump(), filename=filename, format="WAV", duration_seconds=1.0,
                      sample_rate=32_000, channels=1)
    event = ClipAdded(dataset_id=dataset_id, clip_id=str(uuid.uuid4()), prompt="broken take", audio=audio)
    await bus.publish(event)
    return event
