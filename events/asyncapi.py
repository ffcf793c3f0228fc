"""The event contract as an AsyncAPI 3.0 document, generated from the catalogue.

`python -m events.asyncapi` writes `docs/asyncapi.json`; a test fails when the committed document
differs from what the code generates, so the published contract cannot drift from the events.

Each event is one channel `{root}.<aggregate>.{<aggregate>_id}.<event_name>` carrying one message:
the envelope (`events.base.Envelope`) whose `payload` is the event's own schema.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from events.base import Envelope, Event
from events.bus import REQUEST_HEADER
from events.catalogue import CATALOGUE

DOCUMENT_PATH = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"
REF_TEMPLATE = "#/components/schemas/{model}"

DESCRIPTION = """\
Every change in Cadenza is an event on one NATS JetStream stream (the audit log: limits retention,
deletes and purges denied). Subjects are `{root}.<aggregate>.<id>.<event_name>`, where `{root}` is
the installation's namespace (`cadenza` by default; the stream is its upper-case name), so one
aggregate's history is the subject filter `{root}.<aggregate>.<id>.>` and a subscriber interested
in one kind of event filters by its name, e.g. `cadenza.run.*.adapter_saved`.

Every message is a JSON envelope (`event_id`, `type`, `version`, `occurred_at`, `aggregate`,
`aggregate_id`, `payload`) published with a `Nats-Msg-Id` header holding the event's deterministic
idempotency key, so a retried publish is stored once. Readers should ignore unknown fields and
upcast by `type` + `version`. A message is an event only on its own subject (the one its payload's
aggregate, id and event name make): NATS permissions say who may publish on a subject, not what, so
Cadenza's readers pass over anything else, as they do over messages that are no envelope.

Audio clips, checkpoints, adapters and generated samples are not in the events: events carry an
object reference (`bucket`, `name`, `sha256`, `size`) into the buckets `{root}-clips`,
`{root}-checkpoints`, `{root}-adapters` and `{root}-samples`. They have the layout of NATS object
stores (stream `OBJ_<bucket>`, so `nats object get` and nats object-store clients read them), but
their streams refuse rollups: whoever may write a bucket can only add to it. A reference names the
first metadata message on `$O.<bucket>.M.<base64url name>` with its size and digest; its bytes are
the first `size` bytes on `$O.<bucket>.C.<nuid>`. An object-store client reads the newest metadata
of a name, the same object unless something else was stored under that name later: verify the
sha256 after downloading.
"""


def _envelope_schema(event: type[Event], payload_ref: str) -> dict[str, Any]:
    schema = Envelope.model_json_schema(ref_template=REF_TEMPLATE)
    schema["title"] = f"{event.event_type()} envelope"
    properties = schema["properties"]
    properties["type"] = {"const": event.event_type(), "type": "string"}
    properties["version"] = {"const": event.version, "type": "integer"}
    properties["aggregate"] = {"const": event.aggregate, "type": "string"}
    properties["payload"] = {"$ref": payload_ref}
    return schema


def _channel_address(event: type[Event]) -> str:
    return f"{{root}}.{event.aggregate}.{{{event.aggregate}_id}}.{event.event_name()}"


def build_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document describing every event of `CATALOGUE`, deterministically ordered."""
    events = [CATALOGUE[name] for name in sorted(CATALOGUE)]
    _, definitions = models_json_schema(
        [(event, "validation") for event in events], ref_template=REF_TEMPLATE
    )
    schemas: dict[str, Any] = dict(definitions["$defs"])
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event in events:
        name = event.event_type()
        envelope_name = f"{name}Envelope"
        schemas[envelope_name] = _envelope_schema(event, REF_TEMPLATE.format(model=name))
        messages[name] = {
            "name": name,
            "title": name,
            "description": (event.__doc__ or "").strip(),
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/NatsHeaders"},
            "payload": {"$ref": REF_TEMPLATE.format(model=envelope_name)},
            "x-event-version": event.version,
            "x-idempotency-key-fields": [f"{event.aggregate}_id", *event.key_fields],
        }
        channels[name] = {
            "address": _channel_address(event),
            "title": f"{event.aggregate} {event.event_name()}",
            "parameters": {
                "root": {"description": "The installation's namespace.", "default": "cadenza"},
                f"{event.aggregate}_id": {"description": f"Id of the {event.aggregate}."},
            },
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"publish{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{name}"}],
        }
    schemas["NatsHeaders"] = {
        "type": "object",
        "properties": {
            "Nats-Msg-Id": {
                "type": "string",
                "description": "Deterministic idempotency key: `<aggregate>:<id>:<event_name>[:field=value…]`; "
                               "followed by a space and a random suffix on an event stored after a message on "
                               "another subject had taken its key (JetStream deduplicates ids across subjects).",
            },
            REQUEST_HEADER: {
                "type": "string",
                "description": "On events the API published for a request sent with an Idempotency-Key: the "
                               "request's id, by which a retry of it finds what it stored.",
            },
        },
        "required": ["Nats-Msg-Id"],
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Cadenza events", "version": "1.0.0", "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "NATS with JetStream; the stream is the namespace in upper case.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items())), "messages": messages},
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, sort_keys=False) + "\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCUMENT_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
