"""Subjects on the stream: `<root>.<aggregate>.<aggregate id>.<event name>`, e.g.
`cadenza.run.<run id>.loss_reported`. Every subject and subject filter is built and read here."""
from __future__ import annotations

from typing import NamedTuple


class Subject(NamedTuple):
    root: str
    aggregate: str
    aggregate_id: str
    event_name: str


def event_subject(root: str, aggregate: str, aggregate_id: str, event_name: str) -> str:
    """The subject one event is published on."""
    return ".".join(Subject(root, aggregate, aggregate_id, event_name))


def subject_filter(root: str, aggregate: str | None = None, aggregate_id: str | None = None,
                   event_name: str | None = None) -> str:
    """A filter on the parts given; a part left out matches anything. E.g. `(root, "run", run_id)`
    is one run's history, `(root, "run", event_name="run_requested")` every run request."""
    parts = [aggregate, aggregate_id, event_name]
    while parts and parts[-1] is None:
        parts.pop()
    if len(parts) == 3:
        return ".".join([root, *(part or "*" for part in parts)])
    return ".".join([root, *(part or "*" for part in parts), ">"])


def parse_subject(subject: str) -> Subject:
    """The parts of an event's subject (the root may itself contain dots)."""
    parts = subject.rsplit(".", 3)
    if len(parts) != 4:
        raise ValueError(f"not an event subject: {subject!r}")
    return Subject(*parts)
