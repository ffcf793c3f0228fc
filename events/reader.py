"""Reading the stream in order from a sequence, through an ephemeral, ack-less pull consumer.

The reader sends its own pull requests to the consumer's next-message subject and collects what
comes back on one inbox subscription with a callback. nats-py's `fetch` would start a task and a
timer for every message it hands over, which costs more than everything else a reader does with
the message; the callback only collects the messages as the client parses them.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.errors import APIError

from events.base import Envelope, Event
from events.codec import NotAnEvent, UndecodableEvent, decode

log = logging.getLogger(__name__)

# How long after a pull request's own expiry the reader stops waiting for the server's answer (a
# server that went away never answers); what arrives later is kept for the next call.
ANSWER_GRACE = 1.0
# Status codes the server answers a pull request with: no messages left, expired, and a heartbeat
# (never asked for here). Any other status (409 consumer deleted, 503 no consumer) means the
# reader is lost.
NO_MESSAGES, REQUEST_TIMEOUT, HEARTBEAT = "404", "408", "100"


@dataclass(frozen=True)
class StoredEvent:
    """One event as read back from the stream, upcast to the current version."""

    seq: int
    subject: str
    envelope: Envelope
    event: Event


@dataclass(frozen=True)
class UnreadableEvent:
    """A stored message `decode` refused: where it is, what it claims to be, and why."""

    seq: int
    subject: str
    type: str
    error: str
    claims_event: bool = True  # False: not even a claim to be an event (`NotAnEvent`)


def _claimed_type(subject: str) -> str:
    # The subject's last token is the event name; the payload may not even be JSON.
    return subject.rsplit(".", 1)[-1]


class EventReader:
    """An ephemeral pull consumer without acks, reading the stream in order from a sequence.

    The reader's position lives in the caller (the projector keeps it in PostgreSQL), so acks
    would be a second copy of it that nothing reads; a reader that dies is simply opened again
    from the caller's position. One call at a time: a call may start while the caller works on
    the previous batch, but not while another call is waiting.
    """

    def __init__(self, nc: NATS, js: JetStreamContext, stream: str, info: api.ConsumerInfo) -> None:
        self._nc = nc
        self._js = js
        self._stream = stream
        self._consumer = info.name
        self._next_subject = f"{api.DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{info.name}"
        self._inbox = nc.new_inbox()
        self._subscription: Subscription | None = None
        # Stored messages delivered and not yet handed out, in order. They are decoded when handed
        # out, so that whatever decoding raises reaches the caller instead of the client's callback.
        self._received: list[Msg] = []
        self._answered: asyncio.Future[None] | None = None  # the open pull request's end
        self._awaited = 0  # messages the open pull request may still deliver
        self.pending_at_start = info.num_pending
        self.pending = info.num_pending  # messages still to come after the last one fetched

    @classmethod
    async def open(cls, nc: NATS, js: JetStreamContext, stream: str, subject_filter: str,
                   start_seq: int, headers_only: bool = False) -> EventReader:
        """A reader from `start_seq`; with `headers_only`, one for `headers_before` alone."""
        config = api.ConsumerConfig(
            # Named, so that it is created on the subject that names it (the one that names it in
            # the request's body alone is refused by Cadenza's NATS permissions), and at random:
            # whoever knows a consumer's name may fetch from it.
            name=secrets.token_hex(16),
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(start_seq, 1),
            ack_policy=api.AckPolicy.NONE,
            filter_subject=subject_filter,
            inactive_threshold=30.0,
            mem_storage=True,
            headers_only=headers_only or None,
        )
        reader = cls(nc, js, stream, await js.add_consumer(stream, config))
        reader._subscription = await nc.subscribe(reader._inbox, cb=reader._receive)
        return reader

    async def next_messages(self, max_events: int = 1_000, wait: float = 1.0) -> list[StoredEvent | UnreadableEvent]:
        """Up to `max_events` stored messages in order, those `decode` refuses as `UnreadableEvent`;
        [] when none arrived within `wait` seconds. For readers that must account for every
        message (the projector parks the unreadable ones)."""
        return [item for item, _ in await self._fetch(max_events, wait)]

    async def next_batch(self, max_events: int = 1_000, wait: float = 1.0,
                         needed: Collection[str] = ()) -> list[tuple[StoredEvent, int]]:
        """Up to `max_events` readable events, each with the number still pending after it; [] when
        none arrived within `wait` seconds (or all that arrived were unreadable). Messages `decode`
        refuses are skipped with a warning: one event this code cannot read must not stop a reader
        of the history. Only one whose event name (the subject's last token) is in `needed`
        raises `UndecodableEvent`, naming it, unless it does not even claim to be an event, which
        no service publishes (see `NotAnEvent`)."""
        batch = []
        for item, pending in await self._fetch(max_events, wait):
            if isinstance(item, UnreadableEvent) and item.type in needed and item.claims_event:
                raise UndecodableEvent(f"event {item.seq} on {item.subject} cannot be read: {item.error}")
            if isinstance(item, UnreadableEvent):
                log.warning("skipping unreadable event at sequence %d on %s: %s", item.seq, item.subject, item.error)
            else:
                batch.append((item, pending))
        return batch

    async def headers_before(self, end_seq: int) -> AsyncIterator[tuple[int, dict[str, str]]]:
        """The stream sequence and headers of each message before `end_seq`, in order; for a reader
        opened `headers_only` on a subject that holds a message at `end_seq`."""
        while True:
            if not self._received:
                await self._pull(1_000, 1.0)
                if not self._received:
                    await self.check_alive()
            messages, self._received = self._received, []
            for message in messages:
                seq = stream_position(message.reply)[0]
                if seq >= end_seq:
                    return
                yield seq, message.headers or {}

    async def _fetch(self, max_events: int, wait: float) -> list[tuple[StoredEvent | UnreadableEvent, int]]:
        if not self._received:
            await self._pull(max_events, wait)
        messages, self._received = self._received[:max_events], self._received[max_events:]
        batch = [_read(message) for message in messages]
        if batch:
            self.pending = batch[-1][1]
        return batch

    async def _pull(self, max_events: int, wait: float) -> None:
        """Ask for up to `max_events` messages and wait until the server has sent what it has.

        With `no_wait` and `expires` together the server waits up to `expires` for a first message,
        then delivers what is there and ends the request at once (status 404) instead of holding
        it until the batch is full: a caught-up reader gets each new event without delay.
        """
        self._answered = asyncio.get_running_loop().create_future()
        self._awaited = max_events
        request = {"batch": max_events, "expires": int(wait * 1e9), "no_wait": True}
        try:
            await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox)
            async with asyncio.timeout(wait + ANSWER_GRACE):
                await self._answered
        except TimeoutError:
            pass  # no answer: the caller checks the reader when a batch comes back empty
        finally:
            self._answered = None

    async def _receive(self, message: Msg) -> None:
        if message.reply:  # a stored message: its reply subject is the ack subject that says where it is
            self._received.append(message)
            self._awaited -= 1
            if self._awaited == 0:
                self._end_request()
            return
        status = (message.headers or {}).get(api.Header.STATUS)
        if status == HEARTBEAT:
            return
        if status in (NO_MESSAGES, REQUEST_TIMEOUT):
            self._end_request()
        else:
            description = (message.headers or {}).get(api.Header.DESCRIPTION, "")
            self._end_request(APIError(code=int(status or 0), description=f"pull request refused: {description}"))

    def _end_request(self, error: APIError | None = None) -> None:
        # An answer that comes after its request was given up (a late status) finds nothing to end.
        if self._answered is None or self._answered.done():
            return
        if error is None:
            self._answered.set_result(None)
        else:
            self._answered.set_exception(error)

    async def check_alive(self) -> None:
        """Raise if the server no longer knows this consumer (e.g. it restarted and lost it)."""
        await self._js.consumer_info(self._stream, self._consumer)

    async def close(self) -> None:
        # The consumer is left to the server, which removes it after its inactive threshold:
        # deleting consumers is an administrator's right on a server with permissions.
        try:
            if self._subscription is not None:
                await self._subscription.unsubscribe()
        except Exception as error:
            log.debug("could not unsubscribe the reader: %s", error)


def _read(message: Msg) -> tuple[StoredEvent | UnreadableEvent, int]:
    seq, pending = stream_position(message.reply)
    try:
        envelope, event = decode(message.data, message.subject)
    except UndecodableEvent as error:
        return UnreadableEvent(seq=seq, subject=message.subject, type=_claimed_type(message.subject), error=str(error),
                               claims_event=not isinstance(error, NotAnEvent)), pending
    return StoredEvent(seq=seq, subject=message.subject, envelope=envelope, event=event), pending


def stream_position(reply: str) -> tuple[int, int]:
    """The stream sequence and the count still pending, read from a delivered message's ack subject
    (what nats-py's `msg.metadata` parses too, at several times the cost):
    $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>, or with
    <domain>.<account hash> after ACK and a random token at the end."""
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[8])
    return int(tokens[7]), int(tokens[10])
