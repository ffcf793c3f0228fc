"""Bytes on the stream <-> envelopes and typed events. Reading always yields the current version."""
from __future__ import annotations

from events.base import Envelope, Event
from events.catalogue import CATALOGUE
from events.upcast import upcast


class UnknownEventType(ValueError):
    pass


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode()


def decode(data: bytes) -> tuple[Envelope, Event]:
    """Parse a stored envelope, upcast its payload to the catalogue's current version and validate
    it. The returned envelope carries the current version and the upcast payload."""
    envelope = Envelope.model_validate_json(data)
    event_class = CATALOGUE.get(envelope.type)
    if event_class is None:
        raise UnknownEventType(
            f"unknown event type {envelope.type!r} (event {envelope.event_id}); known: {', '.join(sorted(CATALOGUE))}"
        )
    if envelope.version != event_class.version:
        payload = upcast(envelope.type, envelope.version, event_class.version, envelope.payload)
        envelope = envelope.model_copy(update={"version": event_class.version, "payload": payload})
    return envelope, event_class.model_validate(envelope.payload)
