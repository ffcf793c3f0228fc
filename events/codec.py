"""Bytes on the stream <-> envelopes and typed events. Reading always yields the current version.

Whatever a message holds, `decode` either returns a valid event of the current version or raises
`UndecodableEvent` saying why: it is the one place that decides whether a stored message can be
read, so every reader of the stream treats unknown types, unknown versions and invalid payloads
alike.
"""
from __future__ import annotations

import json

from pydantic import ValidationError

from events.base import Envelope, Event
from events.catalogue import CATALOGUE
from events.subjects import parse_subject
from events.upcast import UnknownEventVersion, upcast


class UndecodableEvent(ValueError):
    """A stored message that is not an event this code can read."""


class UnknownEventType(UndecodableEvent):
    pass


class NotAnEvent(UndecodableEvent):
    """A stored message that does not even claim to be an event (it names no event type of the
    catalogue), which no Cadenza service publishes. On a server where users share the streams'
    account (one not set up by Cadenza), anyone who may send a JetStream API request can have its
    answer stored on any subject: the request's reply subject, which permissions do not check."""


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode()


def decode(data: bytes, subject: str) -> tuple[Envelope, Event]:
    """Parse an envelope stored on `subject`, upcast its payload to the catalogue's current version
    and validate it. The returned envelope carries the current version and the upcast payload as
    validated (with the defaults of fields the stored version did not have).

    The event must be on its own subject: NATS permissions say who may publish on which subject,
    not what, so a service could otherwise say another's events (an `AdapterSaved` on a subject of
    the API's, say)."""
    envelope, event = _decode(data)
    try:
        stored_on = parse_subject(subject)[1:]
    except ValueError:
        stored_on = None
    if stored_on != (event.aggregate, event.aggregate_id, event.event_name()):
        raise UndecodableEvent(f"{envelope.type} (event {envelope.event_id}) stored on {subject}, which is not "
                               "its subject: not an event its publisher may say")
    return envelope, event


def _decode(data: bytes) -> tuple[Envelope, Event]:
    try:
        envelope = Envelope.model_validate_json(data)
    except ValidationError as error:
        kind = UndecodableEvent if _claims_an_event(data) else NotAnEvent
        raise kind(f"not an event envelope: {_first_errors(error)}") from None
    event_class = CATALOGUE.get(envelope.type)
    if event_class is None:
        raise UnknownEventType(
            f"unknown event type {envelope.type!r} (event {envelope.event_id}); known: {', '.join(sorted(CATALOGUE))}"
        )
    try:
        if envelope.version == event_class.version:
            return envelope, event_class.model_validate(envelope.payload)
        payload = upcast(envelope.type, envelope.version, event_class.version, envelope.payload)
        event = event_class.model_validate(payload)
        return envelope.model_copy(update={"version": event_class.version, "payload": event.model_dump(mode="json")}), event
    except UnknownEventVersion as error:
        raise UndecodableEvent(str(error)) from None
    except (ValidationError, KeyError, TypeError) as error:  # an upcaster may meet a payload it cannot lift
        reason = _first_errors(error) if isinstance(error, ValidationError) else f"{type(error).__name__}: {error}"
        raise UndecodableEvent(f"{envelope.type} v{envelope.version} (event {envelope.event_id}): {reason}") from None


def _claims_an_event(data: bytes) -> bool:
    """Whether `data` is a JSON object naming an event type of the catalogue, as an envelope does."""
    try:
        claimed = json.loads(data)
    except ValueError:
        return False
    return isinstance(claimed, dict) and isinstance(claimed.get("type"), str) and claimed["type"] in CATALOGUE


def _first_errors(error: ValidationError, limit: int = 3) -> str:
    items = error.errors(include_url=False, include_context=False, include_input=False)
    described = "; ".join(f"{'.'.join(map(str, item['loc'])) or 'message'}: {item['msg']}" for item in items[:limit])
    return described + (f" (and {len(items) - limit} more)" if len(items) > limit else "")
