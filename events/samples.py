"""Feedback on a sample, stated once: what its ratings, tags and favourite are after its history.

A later rating of a criterion replaces the earlier one (the history keeps both); a tag is present
when its latest change added it; the favourite is what its latest change set. The registry's read
model holds exactly this state.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from pydantic import BaseModel, ConfigDict

from events.base import Event
from events.catalogue import (
    RatingCriterion, SampleFavorited, SampleRated, SampleTagged, SampleUnfavorited, SampleUntagged,
)

CRITERIA: tuple[str, ...] = get_args(RatingCriterion)


class Feedback(BaseModel):
    model_config = ConfigDict(frozen=True)

    ratings: dict[str, int] = {}
    tags: frozenset[str] = frozenset()
    favorite: bool = False


def evolve(state: Feedback, event: Event) -> Feedback:
    if isinstance(event, SampleRated):
        return state.model_copy(update={"ratings": {**state.ratings, event.criterion: event.rating}})
    if isinstance(event, SampleTagged):
        return state.model_copy(update={"tags": state.tags | {event.tag}})
    if isinstance(event, SampleUntagged):
        return state.model_copy(update={"tags": state.tags - {event.tag}})
    if isinstance(event, (SampleFavorited, SampleUnfavorited)):
        return state.model_copy(update={"favorite": isinstance(event, SampleFavorited)})
    return state


def fold(history: Iterable[Event]) -> Feedback:
    state = Feedback()
    for event in history:
        state = evolve(state, event)
    return state
