"""Commands of the studio loop: request and cancel generations, give feedback on samples, create
and vote in comparisons. Each validates against the read models, publishes, and answers once the
registry has applied its events (read-your-writes), like every command."""
from __future__ import annotations

import random

from events import comparisons as comparison_life
from events import generations as generation_life
from events.base import ObjectRef
from events.catalogue import (
    ComparisonCreated, ComparisonSide, ComparisonVoted, GenerationCancelRequested, GenerationRequested,
    PreferenceRecorded, SampleFavorited, SampleRated, SampleTagged, SampleUnfavorited, SampleUntagged,
)
from events.generations import GenerationStatus
from model.training.config import TrainingConfig
from services.api import queries, studio_queries
from services.api.commands import publish, published_before
from services.api.context import Context
from services.api.errors import Conflict, NotFound, invalid
from services.api.studio_schemas import (
    Comparison, ComparisonCreate, Generation, GenerationCreate, GenerationParameters, Preference, PreferenceCreate,
    RatingCreate, Sample, TagCreate, VoteCreate,
)
from services.model_dirs import base_model_refusal

DEFAULT_BASE_MODEL = TrainingConfig.model_fields["base_model"].default
# Blind orders must not be predictable from anything a voter sees.
BLIND_ORDER = random.SystemRandom()


# --- generations --------------------------------------------------------------------------------
async def generation_request(ctx: Context, generation_id: str, prompt: str, adapter_id: str | None, seed: int,
                             num_samples: int, parameters: GenerationParameters,
                             comparison_id: str | None = None) -> GenerationRequested:
    """The request for `adapter_id` (None: the base model), with the adapter's weights and its base
    model (a different `base_model` asked for is a 422)."""
    adapter = None
    base_model = parameters.base_model or DEFAULT_BASE_MODEL
    if refusal := base_model_refusal(base_model, ctx.settings.model_dirs):
        raise invalid(("body", "base_model"), refusal, "base_model_not_allowed")
    if adapter_id is not None:
        adapter = await queries.adapter(ctx.pool, adapter_id)
        if parameters.base_model not in (None, adapter.base_model):
            raise invalid(("body", "base_model"),
                          f"adapter '{adapter_id}' was trained on '{adapter.base_model}', not '{parameters.base_model}'")
        base_model = adapter.base_model
    weights = None if adapter is None else ObjectRef(
        bucket=adapter.bucket, name=adapter.object_name, sha256=adapter.sha256, size=adapter.size)
    return GenerationRequested(
        generation_id=generation_id, prompt=prompt, adapter_id=adapter_id, adapter=weights, base_model=base_model,
        duration_seconds=parameters.duration_seconds, seed=seed, num_samples=num_samples,
        guidance_scale=parameters.guidance_scale, temperature=parameters.temperature, top_k=parameters.top_k,
        top_p=parameters.top_p, comparison_id=comparison_id,
    )


async def request_generation(ctx: Context, body: GenerationCreate) -> Generation:
    generation_id = ctx.ids.new()
    await publish(ctx, await generation_request(ctx, generation_id, body.prompt, body.adapter_id, body.seed,
                                                body.num_samples, body))
    return await studio_queries.generation(ctx.pool, generation_id)


async def cancel_generation(ctx: Context, generation_id: str) -> Generation:
    """Queued: cancelled at once. Running: its worker is asked to stop. Finished: 409."""
    found = await studio_queries.generation(ctx.pool, generation_id)
    if not await published_before(ctx, GenerationCancelRequested(generation_id=generation_id)):
        try:
            events = generation_life.cancel(generation_id, GenerationStatus(found.status))
        except generation_life.GenerationAlreadyFinished as error:
            raise Conflict(str(error)) from error
        await publish(ctx, *events)
    return await studio_queries.generation(ctx.pool, generation_id)


# --- feedback -----------------------------------------------------------------------------------
async def rate(ctx: Context, sample_id: str, body: RatingCreate) -> Sample:
    await studio_queries.sample(ctx.pool, sample_id)
    await publish(ctx, SampleRated(sample_id=sample_id, rating_id=ctx.ids.new(), criterion=body.criterion,
                                   rating=body.rating))
    return await studio_queries.sample(ctx.pool, sample_id)


async def tag(ctx: Context, sample_id: str, body: TagCreate) -> Sample:
    found = await studio_queries.sample(ctx.pool, sample_id)
    if body.tag not in found.tags:
        await publish(ctx, SampleTagged(sample_id=sample_id, change_id=ctx.ids.new(), tag=body.tag))
    return await studio_queries.sample(ctx.pool, sample_id)


async def untag(ctx: Context, sample_id: str, tag: str) -> Sample:
    found = await studio_queries.sample(ctx.pool, sample_id)
    untagged = SampleUntagged(sample_id=sample_id, change_id=ctx.ids.new(), tag=tag)
    if not await published_before(ctx, untagged):
        if tag not in found.tags:
            raise NotFound(f"tag of sample '{sample_id}'", tag)
        await publish(ctx, untagged)
    return await studio_queries.sample(ctx.pool, sample_id)


async def set_favorite(ctx: Context, sample_id: str, favorite: bool) -> Sample:
    found = await studio_queries.sample(ctx.pool, sample_id)
    if found.favorite != favorite:
        change = SampleFavorited if favorite else SampleUnfavorited
        await publish(ctx, change(sample_id=sample_id, change_id=ctx.ids.new()))
    return await studio_queries.sample(ctx.pool, sample_id)


async def record_preference(ctx: Context, body: PreferenceCreate) -> Preference:
    if body.chosen_sample_id == body.rejected_sample_id:
        raise invalid(("body", "rejected_sample_id"), "must be another sample than chosen_sample_id")
    await studio_queries.sample(ctx.pool, body.chosen_sample_id)
    await studio_queries.sample(ctx.pool, body.rejected_sample_id)
    preference_id = ctx.ids.new()
    await publish(ctx, PreferenceRecorded(preference_id=preference_id, chosen_sample_id=body.chosen_sample_id,
                                          rejected_sample_id=body.rejected_sample_id))
    return await studio_queries.preference(ctx.pool, preference_id)


# --- comparisons --------------------------------------------------------------------------------
async def create_comparison(ctx: Context, body: ComparisonCreate) -> Comparison:
    """The comparison and its generation requests, published together: one per prompt and side."""
    comparison_id = ctx.ids.new()
    planned = comparison_life.plan_generations(len(body.prompts), body.seed, ctx.ids.new)
    sides = {"a": body.a.adapter_id, "b": body.b.adapter_id}
    requests = [
        await generation_request(ctx, g.generation_id, body.prompts[g.prompt_index], sides[g.side], g.seed,
                                 body.samples_per_prompt, body, comparison_id)
        for g in planned
    ]
    if requests[0].base_model != requests[1].base_model:
        raise invalid(("body", "b", "adapter_id"),
                      f"side a generates with '{requests[0].base_model}' and side b with '{requests[1].base_model}': "
                      "compare adapters of one base model")
    created = ComparisonCreated(
        comparison_id=comparison_id, name=body.name, a=ComparisonSide(adapter_id=body.a.adapter_id),
        b=ComparisonSide(adapter_id=body.b.adapter_id), prompts=body.prompts,
        samples_per_prompt=body.samples_per_prompt, seed=body.seed, generations=planned,
        pairs=comparison_life.plan_pairs(len(body.prompts), body.samples_per_prompt,
                                         lambda: BLIND_ORDER.choice(("a", "b"))),
    )
    await publish(ctx, created, *requests)
    return await studio_queries.comparison(ctx.pool, comparison_id)


async def vote(ctx: Context, comparison_id: str, body: VoteCreate) -> Comparison:
    pair = await studio_queries.pair_state(ctx.pool, comparison_id, body.pair_id)
    # Looked for before the pair's state is checked: a keyed vote on another pair than its first one
    # is a 422 too, not a second vote under the same key.
    this_vote = ComparisonVoted(comparison_id=comparison_id, pair_id=body.pair_id, choice=body.choice,
                                outcome=comparison_life.outcome(pair.first, body.choice))
    if not await published_before(ctx, this_vote):
        try:
            voted = comparison_life.vote(comparison_id, pair, body.choice)
        except (comparison_life.PairNotReady, comparison_life.PairAlreadyVoted) as error:
            raise Conflict(str(error)) from error
        await publish(ctx, voted)
    return await studio_queries.comparison(ctx.pool, comparison_id)
