"""The list endpoints come in keyset pages: each page's `Link: <…>; rel="next"` header names the
next, walking them gives every item once in the list's order (ties on the sort key included), the
last page has no `Link`, and a cursor that names nothing is refused with a 422 saying so."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import httpx

from events.catalogue import AdapterSaved, DatasetCreated
from services.registry.read_your_writes import wait_until_projected
from tests.api.test_studio import studio  # noqa: F401 (a fixture)

NEXT = re.compile(r'<([^>]+)>; rel="next"')
# One moment given to several items, so that pages must order them by id.
TIE = datetime(2030, 1, 1, tzinfo=timezone.utc)


async def walk(client: httpx.AsyncClient, url: str, **params) -> list[httpx.Response]:
    """Every page of a list, from `url` then each page's `Link`."""
    pages = [await client.get(url, params=params or None)]  # httpx drops the query of `url` for {}
    while (link := pages[-1].headers.get("Link")) is not None:
        assert len(pages) < 50, "the pages do not end"
        pages.append(await client.get(NEXT.fullmatch(link).group(1)))
    assert all(page.status_code == 200 for page in pages), [page.text for page in pages]
    return pages


async def tie(db, table: str, column: str, ids: list[str]) -> None:
    await db.execute(f"UPDATE {table} SET {column} = $1 WHERE id = ANY($2::text[])", TIE, ids)


async def sort_keys(db, table: str, column: str) -> dict[str, datetime]:
    return {row["id"]: row[column] for row in await db.fetch(f"SELECT id, {column} FROM {table}")}


def refusal(response: httpx.Response) -> tuple[int, list]:
    return response.status_code, [(error["loc"], error["msg"]) for error in response.json()["detail"]]


async def test_runs_come_in_pages_newest_first_with_ties_by_id_and_filters_kept(api, client, db):
    first, second = await api.supervised_experiment(), await api.supervised_experiment()
    ran = [(await api.run(experiment["id"]))["id"]
           for experiment in (first, second, first, second, first, second, first)]
    await tie(db, "runs", "requested_at", ran[1:6])
    at = await sort_keys(db, "runs", "requested_at")
    newest_first = sorted(ran, key=lambda run: (-at[run].timestamp(), run))

    pages = await walk(client, "/api/runs", limit=2)
    assert [len(page.json()) for page in pages] == [2, 2, 2, 1]
    assert [run["id"] for page in pages for run in page.json()] == newest_first
    assert "Link" not in pages[-1].headers
    assert [run["id"] for run in (await client.get("/api/runs")).json()] == newest_first  # one page by default

    # the filter carries over to every next page
    pages = await walk(client, "/api/runs", experiment_id=first["id"], limit=3)
    assert [len(page.json()) for page in pages] == [3, 1]
    assert [run["id"] for page in pages for run in page.json()] == [run for run in newest_first if run in ran[::2]]
    # a page exactly full is the last one when nothing follows it
    pages = await walk(client, "/api/runs", experiment_id=second["id"], limit=3)
    assert [len(page.json()) for page in pages] == [3]


async def test_experiments_come_in_pages_oldest_first_each_with_its_runs(api, client, db):
    dataset = await api.dataset()
    assert (await api.upload_clip(dataset["id"])).status_code == 201
    made = [(await api.experiment(dataset["id"], name=f"try {n}"))["id"] for n in range(5)]
    runs = {experiment: [(await api.run(experiment))["id"]] for experiment in made[:2]}
    await tie(db, "experiments", "created_at", made[:4])
    at = await sort_keys(db, "experiments", "created_at")

    pages = await walk(client, "/api/experiments", limit=2)
    assert [len(page.json()) for page in pages] == [2, 2, 1]
    listed = [experiment for page in pages for experiment in page.json()]
    assert [experiment["id"] for experiment in listed] == sorted(made, key=lambda id: (at[id], id))
    assert {experiment["id"]: [run["id"] for run in experiment["runs"]] for experiment in listed} == {
        experiment: runs.get(experiment, []) for experiment in made}


async def test_adapters_come_in_pages_oldest_first(api, client, observer_bus, db):
    experiment = await api.supervised_experiment()
    adapters = []
    for n in range(5):
        run = await api.run(experiment["id"])
        weights = await observer_bus.put_object(observer_bus.adapters_bucket, f"a{n}.zip", f"weights {n}".encode())
        adapters.append(AdapterSaved(run_id=run["id"], adapter_id=f"adapter-{n}-{run['id']}",
                                     experiment_id=experiment["id"], name=f"tuned {n}", adapter=weights,
                                     base_model="tiny", dataset_type="supervised", lora_config={}, final_loss=0.5))
    await wait_until_projected(db, max(await observer_bus.publish_many(adapters)))
    made = [adapter.adapter_id for adapter in adapters]
    await tie(db, "adapters", "created_at", made[1:])
    at = await sort_keys(db, "adapters", "created_at")

    pages = await walk(client, "/api/adapters", limit=2)
    assert [len(page.json()) for page in pages] == [2, 2, 1]
    assert [adapter["id"] for page in pages for adapter in page.json()] == sorted(made, key=lambda id: (at[id], id))


async def test_comparisons_come_in_pages_newest_first(client, db):
    made = []
    for n in range(5):
        response = await client.post("/api/comparisons", json={
            "name": f"base vs base {n}", "a": {"adapter_id": None}, "b": {"adapter_id": None},
            "prompts": ["calm piano"], "base_model": "tiny"})
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    await tie(db, "comparisons", "created_at", made[:3])
    at = await sort_keys(db, "comparisons", "created_at")

    pages = await walk(client, "/api/comparisons", limit=2)
    assert [len(page.json()) for page in pages] == [2, 2, 1]
    assert [comparison["id"] for page in pages for comparison in page.json()] == sorted(
        made, key=lambda id: (-at[id].timestamp(), id))


async def generated(studio, sample_counts: list[int]) -> list[dict]:
    """One finished generation per count, with that many samples, in the order requested."""
    made = []
    for n, count in enumerate(sample_counts):
        generation = await studio.request(prompt=f"take {n}", num_samples=count)
        await studio.generate(generation["id"])
        made.append(generation)
    return made


async def test_generations_come_in_pages_newest_first_each_with_its_samples(studio, client, db):
    made = [generation["id"] for generation in await generated(studio, [1, 2, 1, 1, 2])]
    await tie(db, "generations", "requested_at", made[1:4])
    at = await sort_keys(db, "generations", "requested_at")

    pages = await walk(client, "/api/generations", limit=2)
    assert [len(page.json()) for page in pages] == [2, 2, 1]
    listed = [generation for page in pages for generation in page.json()]
    assert [generation["id"] for generation in listed] == sorted(made, key=lambda id: (-at[id].timestamp(), id))
    assert {generation["id"]: len(generation["samples"]) for generation in listed} == dict(zip(made, [1, 2, 1, 1, 2]))
    assert "Link" not in pages[-1].headers
    # one generation by its id is still answered whole
    assert (await client.get(f"/api/generations/{made[1]}")).json() == next(
        generation for generation in listed if generation["id"] == made[1])


async def test_samples_come_in_pages_newest_generation_first_with_the_filters_kept(studio, client, db):
    generations = await generated(studio, [2, 3, 1, 2])
    await tie(db, "generations", "requested_at", [generation["id"] for generation in generations[:3]])
    at = await sort_keys(db, "generations", "requested_at")
    samples = {(sample["generation_id"], sample["index"]): sample["id"]
               for sample in (await client.get("/api/samples")).json()}
    in_order = [samples[key] for key in sorted(samples, key=lambda key: (-at[key[0]].timestamp(), *key))]

    pages = await walk(client, "/api/samples", limit=3)
    assert [len(page.json()) for page in pages] == [3, 3, 2]
    assert [sample["id"] for page in pages for sample in page.json()] == in_order
    assert "Link" not in pages[-1].headers

    # the filters carry over to every next page
    kept = in_order[1::2]
    for sample in kept:
        assert (await client.post(f"/api/samples/{sample}/tags", json={"tag": "keeper"})).status_code == 201
        assert (await client.put(f"/api/samples/{sample}/favorite")).status_code == 200
    pages = await walk(client, "/api/samples", tag="keeper", favorite=True, q="TAKE", limit=1)
    assert [sample["id"] for page in pages for sample in page.json()] == kept
    for page in pages[:-1]:
        query = parse_qs(urlsplit(NEXT.fullmatch(page.headers["Link"]).group(1)).query)
        assert query == {"tag": ["keeper"], "favorite": ["true"], "q": ["TAKE"], "limit": ["1"],
                         "after": [page.json()[0]["id"]]}, query

    # The sample a page ended with leaves the filter before the next page is read: that page still follows it.
    first = await client.get("/api/samples", params={"favorite": True, "limit": 2})
    assert (await client.delete(f"/api/samples/{kept[1]}/favorite")).status_code == 200
    rest = await walk(client, NEXT.fullmatch(first.headers["Link"]).group(1))
    assert [sample["id"] for page in rest for sample in page.json()] == kept[2:]


async def test_dead_letters_come_in_pages_in_stream_order(client, observer_bus, db):
    parked = [(await observer_bus.js.publish(f"{observer_bus.subject_root}.dataset.d{n}.dataset_created",
                                             b"not an event", stream=observer_bus.stream)).seq for n in range(5)]
    [last] = await observer_bus.publish_many([DatasetCreated(dataset_id="after", name="after", kind="supervised")])
    await wait_until_projected(db, last)

    pages = await walk(client, "/api/dead-letters", limit=2)
    assert [len(page.json()) for page in pages] == [2, 2, 1]
    assert [letter["seq"] for page in pages for letter in page.json()] == parked
    assert NEXT.fullmatch(pages[0].headers["Link"]).group(1) == f"/api/dead-letters?after_seq={parked[1]}&limit=2"


async def test_a_datasets_clips_and_pairs_come_in_pages_in_the_order_they_were_added(api, client, db, tone):
    dataset = await api.dataset()
    added = []
    for n in range(5):
        response = await api.upload_clip(dataset["id"], tone(frequency=300 + 50 * n), prompt=f"tone {n}")
        assert response.status_code == 201, response.text
        added.append(response.json()["id"])
    await tie(db, "clips", "created_at", added[:4])
    at = await sort_keys(db, "clips", "created_at")
    in_order = sorted(added, key=lambda id: (at[id], id))

    pages = await walk(client, f"/api/datasets/{dataset['id']}", limit=2)
    assert [len(page.json()["clips"]) for page in pages] == [2, 2, 1]
    assert [clip["id"] for page in pages for clip in page.json()["clips"]] == in_order
    assert {(page.json()["clip_count"], page.json()["name"]) for page in pages} == {(5, dataset["name"])}

    # The clip a page ended with is removed before the next page is read: that page still follows it.
    first = await client.get(f"/api/datasets/{dataset['id']}", params={"limit": 2})
    assert (await client.delete(f"/api/datasets/{dataset['id']}/clips/{in_order[1]}")).status_code == 204
    rest = await walk(client, NEXT.fullmatch(first.headers["Link"]).group(1))
    assert [clip["id"] for page in rest for clip in page.json()["clips"]] == in_order[2:]

    preference = await api.dataset(kind="preference")
    pairs = [(await api.upload_pair(preference["id"], prompt=f"pair {n}")).json()["id"] for n in range(3)]
    pages = await walk(client, f"/api/datasets/{preference['id']}", limit=2)
    assert [[pair["id"] for pair in page.json()["pairs"]] for page in pages] == [pairs[:2], pairs[2:]]


async def test_a_cursor_or_limit_that_names_no_page_is_refused_saying_why(api, client):
    dataset = await api.dataset()
    other = await api.dataset()
    assert (await api.upload_clip(other["id"])).status_code == 201
    other_clip = (await client.get(f"/api/datasets/{other['id']}")).json()["clips"][0]["id"]
    for url, kind in (("/api/runs", "run"), ("/api/experiments", "experiment"), ("/api/adapters", "adapter"),
                      ("/api/comparisons", "comparison"), (f"/api/datasets/{dataset['id']}", "clip"),
                      ("/api/generations", "generation"), ("/api/samples", "sample")):
        status, errors = refusal(await client.get(url, params={"after": "nothing-has-this-id"}))
        assert status == 422 and [loc for loc, _ in errors] == [["query", "after"]], (url, errors)
        assert f"names no {kind} of this list" in errors[0][1], errors
        status, errors = refusal(await client.get(url, params={"after": "a\x00b"}))
        assert (status, errors[0][0]) == (422, ["query", "after"]) and "NUL" in errors[0][1], (url, errors)
        for limit in ("0", "10001", "ten"):
            status, errors = refusal(await client.get(url, params={"limit": limit}))
            assert (status, [loc for loc, _ in errors]) == (422, [["query", "limit"]]), (url, limit)
    for url, name in (("/api/runs", "experiment_id"), *(("/api/samples", name) for name in
                                                        ("adapter_id", "base_model", "tag", "q"))):
        status, errors = refusal(await client.get(url, params={name: "a\x00b"}))  # a filter no stored text matches
        assert (status, errors[0][0]) == (422, ["query", name]) and "NUL" in errors[0][1], (url, errors)
    # a clip of another dataset is no place in this dataset's list
    status, errors = refusal(await client.get(f"/api/datasets/{dataset['id']}", params={"after": other_clip}))
    assert (status, "names no clip" in errors[0][1]) == (422, True)
    for after_seq in ("-1", "x", str(2**63)):
        status, errors = refusal(await client.get("/api/dead-letters", params={"after_seq": after_seq}))
        assert (status, [loc for loc, _ in errors]) == (422, [["query", "after_seq"]]), after_seq
    # an unknown dataset is still a 404, whatever the cursor
    response = await client.get("/api/datasets/nope", params={"after": "x"})
    assert response.status_code == 404, response.text
