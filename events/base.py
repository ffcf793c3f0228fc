"""The envelope every event travels in, and the base class of the typed payloads.

An event's identity is deterministic: its idempotency key is built from the aggregate id and the
fields named in `key_fields`, the key is sent as `Nats-Msg-Id` (so a retried publish is a
duplicate, not a second event), and `event_id` is a UUID derived from the key.
"""
from __future__ import annotations

import functools
import re
import uuid
from datetime import datetime, timezone
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from events.subjects import event_subject

EVENT_ID_NAMESPACE = uuid.UUID("5f0c6a43-8a4e-4b8e-9c1d-2f1f3c6a9e10")


@functools.cache  # a handful of class names, asked for each event read or published
def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Event(BaseModel):
    """A typed event payload. Subclasses name their aggregate and, where one aggregate can see the
    same event type several times, the fields that tell those occurrences apart."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aggregate: ClassVar[str]
    version: ClassVar[int] = 1
    key_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def event_type(cls) -> str:
        return cls.__name__

    @classmethod
    def event_name(cls) -> str:
        return snake_case(cls.__name__)

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, f"{self.aggregate}_id"))

    def idempotency_key(self) -> str:
        parts = [self.aggregate, self.aggregate_id, self.event_name()]
        parts += [f"{name}={getattr(self, name)}" for name in self.key_fields]
        return ":".join(parts)

    def subject(self, root: str) -> str:
        return event_subject(root, self.aggregate, self.aggregate_id, self.event_name())


class Envelope(BaseModel):
    """What is stored on the stream: metadata plus the payload as a plain object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID
    type: str
    version: int
    occurred_at: datetime
    aggregate: str
    aggregate_id: str
    payload: dict[str, Any]

    @classmethod
    def wrap(cls, event: Event, occurred_at: datetime | None = None) -> "Envelope":
        return cls(
            event_id=uuid.uuid5(EVENT_ID_NAMESPACE, event.idempotency_key()),
            type=event.event_type(),
            version=event.version,
            occurred_at=occurred_at or datetime.now(timezone.utc),
            aggregate=event.aggregate,
            aggregate_id=event.aggregate_id,
            payload=event.model_dump(mode="json"),
        )


class ObjectRef(BaseModel):
    """Where bytes live in the NATS object store; events carry this, never the bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class AudioFile(ObjectRef):
    """An uploaded audio file: its object reference plus what was read from the file itself."""

    filename: str
    format: str
    duration_seconds: float = Field(gt=0)
    sample_rate: int = Field(gt=0)
    channels: int = Field(gt=0)
