"""Reading stored events: every version ever written stays readable as the current one."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from events.base import Envelope
from events.reader import stream_position
from events.catalogue import DatasetCreated, RunRequested
from events.codec import UndecodableEvent, UnknownEventType, decode, encode

from model.training.config import TrainingConfig

V1_FIXTURE = Path(__file__).parent / "fixtures" / "run_requested_v1.json"


def test_a_stored_v1_run_request_reads_as_the_current_version():
    envelope, event = decode(V1_FIXTURE.read_bytes(), "cadenza.run.run-v1.run_requested")

    assert isinstance(event, RunRequested)
    assert envelope.version == RunRequested.version == 2
    assert (event.run_id, event.experiment_id, event.dataset_id, event.name) == ("run-v1", "exp-v1", "ds-v1", "first light")
    assert envelope.payload == event.model_dump(mode="json")
    # the upcast config is a valid TrainingConfig (what v1 did not carry takes the defaults)
    config = event.config
    assert isinstance(config, TrainingConfig)
    assert (config.num_epochs, config.batch_size, config.learning_rate, config.lora_r, config.lora_alpha) == (5, 4, 2e-4, 8, 16)


def test_current_events_round_trip_unchanged():
    original = Envelope.wrap(DatasetCreated(dataset_id="d1", name="drums", kind="supervised"))

    envelope, event = decode(encode(original), "cadenza.dataset.d1.dataset_created")

    assert envelope == original
    assert event == DatasetCreated(dataset_id="d1", name="drums", kind="supervised")


def test_an_unknown_event_type_is_a_clear_error():
    stored = json.loads(V1_FIXTURE.read_text())
    stored["type"] = "RunTeleported"

    with pytest.raises(UnknownEventType, match="unknown event type 'RunTeleported'"):
        decode(json.dumps(stored).encode(), "cadenza.run.run-v1.run_requested")


def test_a_version_newer_than_the_code_is_a_clear_error():
    stored = json.loads(V1_FIXTURE.read_text())
    stored["version"] = 3

    with pytest.raises(UndecodableEvent, match="RunRequested version 3 is newer than this code knows"):
        decode(json.dumps(stored).encode(), "cadenza.run.run-v1.run_requested")


@pytest.mark.parametrize("reply", [
    "$JS.ACK.CADENZA.reader.1.4711.42.1732547000000000000.99",
    "$JS.ACK.hub.ACCOUNTHASH.CADENZA.reader.1.4711.42.1732547000000000000.99.randomtoken",
])
def test_thestream_position_is_read_from_the_ack_subject_as_nats_reads_it(reply):
    metadata = Msg(_client=None, subject="cadenza.run.r.loss_reported", reply=reply).metadata

    assert stream_position(reply) == (metadata.sequence.stream, metadata.num_pending) == (4711, 99)


@pytest.mark.parametrize("subject", [
    "cadenza.run.r1.adapter_saved",       # another event's name: what a service not allowed to say it would publish
    "cadenza.run.run-v2.run_requested",   # another run's
    "cadenza.dataset.run-v1.run_requested",
    "run_requested",
])
def test_an_event_stored_on_another_subject_than_its_own_is_not_read(subject: str):
    with pytest.raises(UndecodableEvent, match="which is not its subject"):
        decode(V1_FIXTURE.read_bytes(), subject)
