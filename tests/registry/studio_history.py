"""Events of the studio loop as a real installation sees them, late and repeated ones included:
generations in every status, feedback, a comparison with votes, and a dataset drawn from them."""
from __future__ import annotations

from events.base import Event
from events.catalogue import (
    ClipAdded, ComparisonCreated, ComparisonGeneration, ComparisonPair, ComparisonSide, ComparisonVoted,
    DatasetCreated, DatasetDrawnFromFeedback, DrawnClip, DrawnPair, FeedbackFilter, GenerationCancelled,
    GenerationCancelRequested, GenerationCompleted, GenerationFailed, GenerationProgressed, GenerationRequested,
    GenerationStarted, PreferencePairAdded, PreferenceRecorded, SampleFavorited, SampleGenerated, SampleRated,
    SampleTagged, SampleUnfavorited, SampleUntagged,
)
from events.generations import sample_id
from mixed_history import audio


def request(generation_id: str, adapter_id: str | None = "adapter-done", num_samples: int = 2,
            comparison_id: str | None = None, seed: int = 1) -> GenerationRequested:
    return GenerationRequested(generation_id=generation_id, prompt=f"prompt of {generation_id}", adapter_id=adapter_id,
                               base_model="tiny", duration_seconds=2.0, seed=seed, num_samples=num_samples,
                               guidance_scale=3.0, temperature=1.0, top_k=250, top_p=0.0, comparison_id=comparison_id)


def generated(generation_id: str, count: int, attempt: int = 1) -> list[Event]:
    events: list[Event] = [GenerationStarted(generation_id=generation_id, attempt=attempt, worker_id=f"w{attempt}")]
    events += [GenerationProgressed(generation_id=generation_id, attempt=attempt, steps_done=step, steps_total=4)
               for step in (2, 4)]
    events += [SampleGenerated(generation_id=generation_id, sample_id=sample_id(generation_id, index), index=index,
                               audio=audio(f"{generation_id}-{index}"), seed=1, seconds_taken=0.5)
               for index in range(count)]
    return events + [GenerationCompleted(generation_id=generation_id, attempt=attempt, seconds_taken=1.5)]


def generations() -> list[Event]:
    return [
        request("tuned"), *generated("tuned", 2),
        request("base", adapter_id=None), *generated("base", 2),
        request("broken"), GenerationStarted(generation_id="broken", attempt=1, worker_id="w1"),
        GenerationFailed(generation_id="broken", attempt=1, error="out of memory"),
        request("dropped"), GenerationCancelRequested(generation_id="dropped"),
        GenerationCancelled(generation_id="dropped", attempt=0),
        request("busy"), GenerationStarted(generation_id="busy", attempt=1, worker_id="w1"),
        GenerationStarted(generation_id="busy", attempt=2, worker_id="w2"),  # the first worker died
        GenerationProgressed(generation_id="busy", attempt=2, steps_done=1, steps_total=4),
        GenerationProgressed(generation_id="busy", attempt=1, steps_done=3, steps_total=4),  # late, ignored
        GenerationCancelRequested(generation_id="busy"),
        request("waiting"),
    ]


def feedback() -> list[Event]:
    tuned0, tuned1, base0 = sample_id("tuned", 0), sample_id("tuned", 1), sample_id("base", 0)
    return [
        SampleRated(sample_id=tuned0, rating_id="r1", criterion="overall", rating=2),
        SampleRated(sample_id=tuned0, rating_id="r2", criterion="overall", rating=5),
        SampleRated(sample_id=tuned0, rating_id="r3", criterion="melody", rating=3),
        SampleRated(sample_id=base0, rating_id="r4", criterion="overall", rating=1),
        SampleTagged(sample_id=tuned0, change_id="c1", tag="warm"),
        SampleTagged(sample_id=tuned0, change_id="c2", tag="lofi"),
        SampleUntagged(sample_id=tuned0, change_id="c3", tag="warm"),
        SampleFavorited(sample_id=tuned1, change_id="c4"),
        SampleFavorited(sample_id=base0, change_id="c5"),
        SampleUnfavorited(sample_id=base0, change_id="c6"),
        PreferenceRecorded(preference_id="pref", chosen_sample_id=tuned1, rejected_sample_id=base0),
    ]


def comparison() -> list[Event]:
    """Tuned adapter (a) against the base model (b) on one prompt, two samples each, both voted."""
    created = ComparisonCreated(
        comparison_id="duel", name="tuned vs base", a=ComparisonSide(adapter_id="adapter-done"),
        b=ComparisonSide(adapter_id=None), prompts=["duel prompt"], samples_per_prompt=2, seed=9,
        generations=[ComparisonGeneration(generation_id="duel-a", side="a", prompt_index=0, seed=9),
                     ComparisonGeneration(generation_id="duel-b", side="b", prompt_index=0, seed=9)],
        pairs=[ComparisonPair(pair_id="duel-0", prompt_index=0, sample_index=0, first="b"),
               ComparisonPair(pair_id="duel-1", prompt_index=0, sample_index=1, first="a")],
    )
    return [
        created, request("duel-a", comparison_id="duel", seed=9),
        request("duel-b", adapter_id=None, comparison_id="duel", seed=9),
        *generated("duel-a", 2), *generated("duel-b", 2),
        ComparisonVoted(comparison_id="duel", pair_id="duel-0", choice="second", outcome="a"),
        ComparisonVoted(comparison_id="duel", pair_id="duel-1", choice="equal", outcome="tie"),
        ComparisonVoted(comparison_id="duel", pair_id="duel-0", choice="first", outcome="b"),  # a second vote: ignored
    ]


def drawn_datasets() -> list[Event]:
    tuned0 = sample_id("tuned", 0)
    duel_a, duel_b = sample_id("duel-a", 0), sample_id("duel-b", 0)
    return [
        DatasetCreated(dataset_id="liked", name="Liked", kind="supervised"),
        DatasetDrawnFromFeedback(dataset_id="liked", filter=FeedbackFilter(min_rating=4),
                                 clips=[DrawnClip(clip_id="liked-0", sample_id=tuned0)]),
        ClipAdded(dataset_id="liked", clip_id="liked-0", prompt="prompt of tuned", audio=audio("tuned-0")),
        DatasetCreated(dataset_id="votes", name="Votes", kind="preference"),
        DatasetDrawnFromFeedback(dataset_id="votes", filter=FeedbackFilter(comparison_ids=["duel"]),
                                 pairs=[DrawnPair(pair_id="votes-0", chosen_sample_id=duel_a, rejected_sample_id=duel_b,
                                                  comparison_id="duel", comparison_pair_id="duel-0")]),
        PreferencePairAdded(dataset_id="votes", pair_id="votes-0", prompt="duel prompt",
                            chosen_clip_id="votes-0-chosen", chosen=audio("duel-a-0"),
                            rejected_clip_id="votes-0-rejected", rejected=audio("duel-b-0")),
    ]


def late_events() -> list[Event]:
    return [
        GenerationStarted(generation_id="tuned", attempt=2, worker_id="w9"),  # redelivered after completion
        *generated("tuned", 2, attempt=2)[1:],  # its samples again: stored once
        GenerationCompleted(generation_id="broken", attempt=1, seconds_taken=1.0),
        GenerationStarted(generation_id="dropped", attempt=1, worker_id="w1"),
    ]


def studio_history() -> list[Event]:
    return generations() + feedback() + comparison() + drawn_datasets() + late_events()
