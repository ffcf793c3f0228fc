"""The one rule by which a worker counts the failed attempts at a request it takes (a run's, a
generation's): its work queue redelivers without limit, so the worker itself gives up."""
from __future__ import annotations


def failed_attempts(delivery: int, handed_back: int) -> int:
    """How many attempts failed before delivery number `delivery` of a request. Every earlier
    delivery failed, crashed or lost its worker, unless a stopping worker handed it back
    (`handed_back` of them): a graceful restart is no failure, however many there are."""
    return delivery - 1 - handed_back
