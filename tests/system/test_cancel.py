"""A user cancels runs: a running one stops its training process, a queued one is never trained."""
from __future__ import annotations

import asyncio
import contextlib
import time

from nats.js.errors import NotFoundError

from fault_injection import CuttableProxy
from services.trainer.settings import DURABLE_NAME


async def wait_until_consumed(bus, timeout: float = 60) -> None:
    """Until every run request was taken and acked by a trainer."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(NotFoundError):  # until the trainer has created its consumer
            info = await bus.js.consumer_info(bus.stream, DURABLE_NAME)
            if info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq > 0:
                return
        assert time.monotonic() < deadline, "run requests still pending"
        await asyncio.sleep(0.2)


async def test_cancelling_a_running_run_stops_its_training_and_registers_no_adapter(cadenza, training_config):
    cadenza.start_trainer()
    experiment = await cadenza.supervised_experiment(training_config(max_steps=10_000, checkpoint_every=10_000))
    run = await cadenza.request_run(experiment)
    await cadenza.wait_for_event(run["id"], "LossReported")

    response = await cadenza.client.post(f"/api/runs/{run['id']}/cancel")

    assert response.status_code == 202, response.text
    run = await cadenza.wait_for_run(run["id"], timeout=60)
    assert run["status"] == "cancelled"
    types = await cadenza.history_types(run["id"])
    assert types[-1] == "RunCancelled"
    assert "AdapterSaved" not in types and "RunCompleted" not in types
    cancelled = await cadenza.wait_for_event(run["id"], "RunCancelled")
    assert cancelled.event.attempt == 1
    # the process stopped at a step boundary, long before its 10,000 steps
    assert types.count("LossReported") < 1000
    assert (await cadenza.get("/api/adapters")) == []
    await wait_until_consumed(cadenza.bus)


async def test_a_queued_run_that_is_cancelled_is_never_trained(cadenza, training_config):
    experiment = await cadenza.supervised_experiment(training_config())
    run = await cadenza.request_run(experiment, name="changed my mind")
    response = await cadenza.client.post(f"/api/runs/{run['id']}/cancel")
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")

    cadenza.start_trainer()

    await wait_until_consumed(cadenza.bus)  # the trainer took the request and acked it
    assert await cadenza.history_types(run["id"]) == ["RunRequested", "RunCancelRequested", "RunCancelled"]
    assert (await cadenza.get(f"/api/runs/{run['id']}"))["status"] == "cancelled"
    assert (await cadenza.client.post(f"/api/runs/{run['id']}/cancel")).status_code == 409


async def test_a_cancel_published_while_the_trainer_is_cut_off_from_nats_still_stops_its_run(
        cadenza, training_config):
    """NATS delivers a plain message only to the connections there at that moment: the trainer,
    back after its connection was cut, finds the cancel in the stream."""
    proxy = CuttableProxy(cadenza.settings.nats_url)
    await proxy.restore()
    cadenza.start_trainer("cut-off", nats_url=proxy.url)
    experiment = await cadenza.supervised_experiment(training_config(max_steps=10_000, checkpoint_every=10_000))
    run = await cadenza.request_run(experiment)
    await cadenza.wait_for_event(run["id"], "LossReported")

    await proxy.cut()
    await cadenza.post(f"/api/runs/{run['id']}/cancel", expected=202)
    await asyncio.sleep(1)  # shorter than the trainer's ack wait: its run request stays its own
    await proxy.restore()

    run = await cadenza.wait_for_run(run["id"], timeout=60)
    assert run["status"] == "cancelled"
    types = await cadenza.history_types(run["id"])
    assert types.count("LossReported") < 1000 and "RunCompleted" not in types
