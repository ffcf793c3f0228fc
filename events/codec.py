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
    it. The returned envelope carries the current version and the upcast payload as validated (with
    the defaults of fields the stored version did not have)."""
    envelope = Envelope.model_validate_json(data)
    event_class = CATALOGUE.get(envelope.type)
    if event_class is None:
        raise UnknownEventType(
            f"unknown event type {envelope.type!r} (event {envelope.event_id}); known: {', '.join(sorted(CATALOGUE))}"
        )
    if envelope.version == event_class.version:
        return envelope, event_class.model_validate(envelope.payload)
    payload = upcast(envelope.type, envelope.version, event_class.version, envelope.payload)
    event = event_class.model_validate(payload)
    return envelope.model_copy(update={"version": event_class.version, "payload": event.model_dump(mode="json")}), event
