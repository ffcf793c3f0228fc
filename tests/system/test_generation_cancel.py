"""A user cancels generations: a queued one is never generated, a running one stops mid-way."""
from __future__ import annotations

from services.generator.settings import DURABLE_NAME

LONG = 60.0  # seconds of audio: thousands of decoding steps, so the generation is still running when cancelled


async def test_a_queued_generation_that_is_cancelled_is_never_generated(studio):
    queued = await studio.request()
    response = await studio.cadenza.client.post(f"/api/generations/{queued['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled", response.text

    studio.start_worker()
    later = await studio.request()
    assert (await studio.wait_for_generation(later["id"]))["status"] == "completed"

    # one slot takes requests in order: the cancelled one was delivered first, and dropped
    types = [s.envelope.type for s in await studio.history(queued["id"])]
    assert types == ["GenerationRequested", "GenerationCancelRequested", "GenerationCancelled"]
    bus = studio.cadenza.bus
    info = await bus.js.consumer_info(bus.stream, DURABLE_NAME)
    assert (info.num_ack_pending, info.num_pending, info.delivered.consumer_seq) == (0, 0, 2)
    assert (await studio.cadenza.get(f"/api/generations/{queued['id']}"))["samples"] == []


async def test_a_running_generation_that_is_cancelled_stops_and_stores_no_sample(studio):
    studio.start_worker()
    running = await studio.request(duration_seconds=LONG)
    progressed = await studio.wait_for_event(running["id"], "GenerationProgressed")
    assert progressed.event.steps_done < progressed.event.steps_total

    response = await studio.cadenza.client.post(f"/api/generations/{running['id']}/cancel")
    # 202 while its worker stops; the worker stops at its next step, sometimes before the answer,
    # which then says so (200, cancelled)
    assert (response.status_code, response.json()["status"]) in {(202, "running"), (200, "cancelled")}, response.text
    cancelled = await studio.wait_for_generation(running["id"])

    assert (cancelled["status"], cancelled["attempt"], cancelled["samples"]) == ("cancelled", 1, [])
    history = await studio.history(running["id"])
    types = [s.envelope.type for s in history]
    assert types[-1] == "GenerationCancelled" and "SampleGenerated" not in types
    assert history[-1].event.attempt == 1
    # the worker is free again
    after = await studio.request()
    assert (await studio.wait_for_generation(after["id"]))["status"] == "completed"
