import pytest

from events.catalogue import LossReported, RunRequested
from events.subjects import Subject, event_subject, parse_subject, subject_filter


def test_an_events_subject_names_root_aggregate_id_and_event() -> None:
    assert event_subject("cadenza", "run", "r1", "loss_reported") == "cadenza.run.r1.loss_reported"
    event = LossReported(run_id="r1", attempt=1, step=3, epoch=1, loss=2.5)
    assert event.subject("t.ns") == "t.ns.run.r1.loss_reported"
    assert parse_subject("t.ns.run.r1.loss_reported") == Subject("t.ns", "run", "r1", "loss_reported")


@pytest.mark.parametrize("parts, expected", [
    ((), "cadenza.>"),
    (("run",), "cadenza.run.>"),
    (("run", "r1"), "cadenza.run.r1.>"),
    (("run", "r1", "run_cancelled"), "cadenza.run.r1.run_cancelled"),
    (("run", None, RunRequested.event_name()), "cadenza.run.*.run_requested"),
    ((None, None, "adapter_saved"), "cadenza.*.*.adapter_saved"),
])
def test_a_filter_matches_anything_in_the_parts_left_out(parts: tuple, expected: str) -> None:
    assert subject_filter("cadenza", *parts) == expected


def test_a_subject_without_four_parts_is_refused() -> None:
    with pytest.raises(ValueError, match="not an event subject"):
        parse_subject("cadenza.run")
