"""The property of test_any_input for the studio's commands: whatever text, numbers and nesting a
client sends to generations, feedback on samples, preferences, comparisons, votes and datasets
drawn from feedback, the request is either refused with a 4xx or published, and every published
event is applied by the registry (no dead letters).

Each field gets a value the command takes, so that a good share of the requests pass validation and
reach the read models and the bus, and now and then anything at all; ids (in the body and in the
URL) are real ones, unknown ones, or text no read model can hold."""
from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, example, given, settings, strategies as st

from tests.api.test_any_input import as_sent, json_values, text
from tests.api.test_studio import Studio, compare, studio  # noqa: F401 (fixture)

words = st.text("abc xyz/%?#.é🎹", min_size=1, max_size=12)
ratings = st.integers(min_value=1, max_value=5)
# What no read model can hold, more often than in arbitrary text.
unstorable = st.sampled_from(["nul\x00", "\ud800", "lone \udfff surrogate"])
dates = (st.datetimes(timezones=st.none() | st.timezones()).map(lambda moment: moment.isoformat())
         | st.sampled_from(["2024-02-30", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]))


# Inputs once answered with a 500, tried on every run.
FOUND = {
    "generation": [("POST", "/api/generations", {"prompt": "a", "adapter_id": "\ud800"})],  # asyncpg cannot encode it
    "preview": [
        ("POST", "/api/datasets/preview", {"kind": "supervised", "filter": {  # naive and aware compared
            "since": "2024-01-01T00:00:00", "until": "2024-06-01T00:00:00+02:00"}}),
        ("POST", "/api/datasets/preview", {"kind": "preference", "filter": {  # before year 1 in UTC
            "since": "0001-01-01T00:00:00+14:00"}}),
    ],
}


def body(required: dict[str, st.SearchStrategy], optional: dict[str, st.SearchStrategy] | None = None,
         ) -> st.SearchStrategy[dict[str, Any]]:
    """The `required` fields and any of the `optional` ones, each a value from its strategy, and now
    and then one of them (or a field of another name) any JSON value instead."""
    fields = {**required, **(optional or {})}
    present = st.fixed_dictionaries(required, optional=optional)
    replaced = st.none() | st.tuples(st.sampled_from(sorted(fields)) | text, json_values)
    return st.tuples(present, replaced).map(
        lambda parts: parts[0] if parts[1] is None else {**parts[0], parts[1][0]: parts[1][1]})


def path(value: str) -> str:
    """`value` as one URL path segment, percent-encoded as UTF-8 (lone surrogates kept as bytes)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


async def test_every_studio_command_input_is_refused_with_4xx_or_published_and_applied(studio, client):
    adapter_id = await studio.adapter()
    generation = await studio.request(base_model="tiny", num_samples=2)
    await studio.generate(generation["id"])
    generated = (await client.get(f"/api/generations/{generation['id']}")).json()
    sample_ids = [sample["id"] for sample in generated["samples"]]
    comparison = await compare(studio, client, adapter_id, ["duel"], samples_per_prompt=3)
    for made in comparison["generations"]:
        await studio.generate(made["generation_id"])
    pair_ids = [pair["id"] for pair in await studio.db.fetch(
        "SELECT id FROM comparison_pairs WHERE comparison_id = $1", comparison["id"])]

    # Ids are text as well: unknown ones, and ones no read model can hold.
    samples = st.sampled_from(sample_ids) | text | unstorable
    adapters = st.sampled_from([adapter_id, None]) | text | unstorable
    side = body({"adapter_id": adapters})
    generation_fields = {
        "duration_seconds": st.floats(min_value=0.1, max_value=2),
        "guidance_scale": st.floats(min_value=1, max_value=5),
        "temperature": st.floats(min_value=0.1, max_value=2), "top_k": st.integers(min_value=0, max_value=250),
        "top_p": st.floats(min_value=0, max_value=1), "seed": st.integers(min_value=0, max_value=2**32 - 51),
        "base_model": st.just("tiny"),
    }
    # A filter of the kind's own fields, or of either kind's (some of which do not apply).
    any_time = {"q": words, "since": dates, "until": dates}
    of_samples = {"adapter_id": adapters, "min_rating": ratings, "max_rating": ratings,
                  "tags": st.lists(st.just("keeper") | words, max_size=3)}
    of_votes = {"comparison_ids": st.lists(st.just(comparison["id"]) | text | unstorable, max_size=2),
                "include_free_pairs": st.booleans()}
    kinds_and_filters = (st.tuples(st.just("supervised"), body({}, {**of_samples, **any_time}))
                         | st.tuples(st.just("preference"), body({}, {**of_votes, **any_time}))
                         | st.tuples(st.sampled_from(["supervised", "preference"]),
                                     body({}, {**of_samples, **of_votes, **any_time})))
    sample_urls = samples.map(lambda s: f"/api/samples/{path(s)}")
    commands = {
        "generation": st.tuples(st.just("POST"), st.just("/api/generations"), body(
            {"prompt": words},
            {"adapter_id": adapters, "num_samples": st.integers(min_value=1, max_value=3), **generation_fields})),
        "rating": st.tuples(st.just("POST"), sample_urls.map(lambda url: f"{url}/ratings"), body(
            {"rating": ratings}, {"criterion": st.sampled_from(["overall", "melody"])})),
        "tag": st.tuples(st.just("POST"), sample_urls.map(lambda url: f"{url}/tags"),
                         body({"tag": st.just("keeper") | words})),
        "untag": st.tuples(st.just("DELETE"), st.tuples(sample_urls, st.just("keeper") | text | unstorable).map(
            lambda tagged: f"{tagged[0]}/tags/{path(tagged[1])}"), st.none()),
        "favourite": st.tuples(st.sampled_from(["PUT", "DELETE"]), sample_urls.map(lambda url: f"{url}/favorite"),
                               st.none()),
        "preference": st.tuples(st.just("POST"), st.just("/api/preferences"), body(
            {"chosen_sample_id": samples, "rejected_sample_id": samples})),
        "comparison": st.tuples(st.just("POST"), st.just("/api/comparisons"), body(
            {"name": words, "a": side, "b": side, "prompts": st.lists(words, min_size=1, max_size=3)},
            {"samples_per_prompt": st.integers(min_value=1, max_value=3), **generation_fields})),
        "vote": st.tuples(st.just("POST"), (st.just(comparison["id"]) | text | unstorable).map(
            lambda c: f"/api/comparisons/{path(c)}/votes"),
            body({"pair_id": st.sampled_from(pair_ids) | text | unstorable,
                  "choice": st.sampled_from(["first", "second", "equal"])})),
        "preview": st.tuples(st.just("POST"), st.just("/api/datasets/preview"), kinds_and_filters.flatmap(
            lambda drawn: body({"kind": st.just(drawn[0]), "filter": st.just(drawn[1])}))),
        "dataset from feedback": st.tuples(st.just("POST"), st.just("/api/datasets"), kinds_and_filters.flatmap(
            lambda drawn: body({"name": words, "kind": st.just(drawn[0]), "from_feedback": st.just(drawn[1])},
                               {"description": words}))),
    }

    loop = asyncio.get_running_loop()
    answered: list[int] = []

    async def send(method: str, url: str, sent: dict[str, Any] | None) -> None:
        content = None if sent is None else as_sent(sent)
        response = await client.request(method, url, content=content, headers={"content-type": "application/json"})
        assert response.is_success or 400 <= response.status_code < 500, (method, url, sent, response.text)
        answered.append(response.status_code)

    def check(name: str) -> None:
        """The property for one command, on examples of its own (drawn from all of them at once,
        hypothesis would reach few of the commands' rarer inputs), and the inputs it once failed on."""
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(sent=commands[name])
        def property(sent: tuple[str, str, dict[str, Any] | None]) -> None:
            asyncio.run_coroutine_threadsafe(send(*sent), loop).result(timeout=60)

        for sent in FOUND.get(name, []):
            property = example(sent=sent)(property)
        property()

    for name in commands:
        # hypothesis drives synchronous code: it runs in a thread, each request in the test's loop
        await asyncio.to_thread(check, name)

    assert (await client.get("/api/dead-letters")).json() == []
    assert any(status in (200, 201) for status in answered) and any(400 <= status < 500 for status in answered)
