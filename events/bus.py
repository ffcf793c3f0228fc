"""The JetStream stream (Cadenza's audit log and source of truth) and the object-store buckets.

One `Bus` per process: `await Bus.connect(url, namespace)`, then `await bus.ensure()` once at start.
Everything Cadenza creates is named after the namespace, so installations and test sessions can
share a server: stream `<NAMESPACE>`, subjects `<namespace>.>`, buckets `<namespace>-clips`,
`<namespace>-adapters`, `<namespace>-checkpoints`, `<namespace>-samples`.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import secrets
import ssl
import tempfile
from collections.abc import AsyncIterator, Collection, Iterable
from pathlib import Path

import nats
from nats.aio.client import DEFAULT_INBOX_PREFIX, Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError, NotFoundError

from events.base import Envelope, Event, ObjectRef
from events.codec import encode
from events.credentials import NatsCredentialsError, check_creds_file
from events.reader import EventReader, StoredEvent
from events.urls import redacted
from events import objects, subjects

log = logging.getLogger(__name__)

# JetStream drops a publish whose Nats-Msg-Id it has seen within this window, and answers with the
# original's sequence. It covers what retries a client makes on its own (a publish timeout, a
# reconnect, a request retried by a user) at the cost of the server keeping every id of the last
# two minutes in memory. A duplicate arriving later (a trainer restarted after a long outage) is
# stored again; the projector folds it harmlessly, since every read-model write is keyed by the
# ids the event carries and statuses never move backwards.
DUPLICATE_WINDOW_SECONDS = 120.0
PUBLISH_BATCH = 1_000
REQUEST_TIMEOUT = 10.0
STREAM_CONFIG_CONFLICT = 10058
# How nats-py reports a request the server refused: 'nats: permissions violation for publish to "<subject>"'.
PERMISSIONS_VIOLATION = "permissions violation for publish to"
MSG_ID = "Nats-Msg-Id"
# JetStream matches a Nats-Msg-Id against the whole stream, not the subject, and any publisher may send
# any id: a service could keep another's event off the stream by publishing its (foreseeable) id
# first on a subject of its own. An event whose id was taken is stored under its id, this separator
# and a random suffix.
TAKEN_ID_SEPARATOR = " "
# What a message published for an API request sent with an Idempotency-Key carries: the request's
# id (see `ResourceIds`), which tells its retry what the first try stored.
REQUEST_HEADER = "Cadenza-Request"
# Each header costs its name and value plus ": " and CRLF; the server counts headers and payload
# together against its max_payload. The margin also covers the "NATS/1.0" status line.
HEADER_LINE_OVERHEAD = 4 + 16  # "stream name already in use with a different configuration"


class PublishError(RuntimeError):
    pass


class PublishTimeout(PublishError, TimeoutError):
    """No ack came in time: the server is away or slow, and the events may yet be stored (the
    client sends what it buffered once it reconnects), so publishing them again is the remedy."""


class EventTooLarge(ValueError):
    """An event whose encoded size is over the server's message limit: it was not published."""


class StreamSettingsDiffer(RuntimeError):
    """A declared stream's settings are not this release's, and this connection's user may not
    change them (on Cadenza's NATS, only `admin` may)."""


class Bus:
    def __init__(self, nc: NATS, namespace: str) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=REQUEST_TIMEOUT)
        self.subject_root = namespace
        self.stream = namespace.upper()
        self.clips_bucket = f"{namespace}-clips"
        self.adapters_bucket = f"{namespace}-adapters"
        self.checkpoints_bucket = f"{namespace}-checkpoints"
        self.samples_bucket = f"{namespace}-samples"
        # Subjects (in lower case, as nats-py reports them) of requests awaiting either their reply or
        # their refusal: the server answers a refused request with a permissions violation sent to the
        # connection, never with a reply.
        self._awaiting_refusal: dict[str, asyncio.Future[None]] = {}

    @classmethod
    async def connect(cls, nats_url: str, namespace: str, creds_file: Path | None = None,
                      ca_file: Path | None = None, inbox_prefix: str = DEFAULT_INBOX_PREFIX.decode()) -> "Bus":
        """Connect to `nats_url`, which may carry `user:password@` or `token@`; `creds_file` is a
        NATS credentials file (JWT and NKey seed), `ca_file` the CA that signed the certificate
        of a `tls://` server (without it, the system's CAs). Replies and consumer deliveries come
        to subjects under `inbox_prefix`, which the user must be allowed to subscribe to."""
        shown = redacted(nats_url)
        if creds_file:
            check_creds_file(creds_file)
        nc, connecting, bus = NATS(), True, None

        async def on_error(error: Exception) -> None:
            log.warning("nats: %s", error)
            if bus is not None:
                bus._refused(str(error))
            # Raised here, it ends the first connection, which would otherwise retry forever. nats-py
            # reports a refusal while connecting as a plain error with the server's message.
            if connecting and "Authorization Violation" in str(error):
                raise NatsCredentialsError(f"{shown} refused the credentials this process connects with"
                                           + (f" (from {creds_file})" if creds_file else ""))

        async def on_disconnected() -> None:
            if not (nc.is_draining or nc.is_closed):  # closing is not news
                log.warning("nats: disconnected from %s", shown)

        async def on_reconnected() -> None:
            log.info("nats: reconnected to %s", shown)

        try:
            await nc.connect(
                nats_url,
                name=f"cadenza-{namespace}",
                max_reconnect_attempts=-1,  # a service outlives server restarts
                reconnect_time_wait=0.5,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
                user_credentials=str(creds_file) if creds_file else None,
                tls=tls_context(ca_file),
                inbox_prefix=inbox_prefix,
            )
        except NatsCredentialsError:
            await nc.close()
            raise
        connecting = False
        bus = cls(nc, namespace)
        return bus

    async def close(self) -> None:
        await self.nc.drain()

    # --- declaring -------------------------------------------------------------------------------
    def stream_config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.stream,
            subjects=[subjects.subject_filter(self.subject_root)],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            deny_delete=True,
            deny_purge=True,
        )

    async def ensure(self) -> None:
        """Declare the stream and the buckets; safe to call from every service at every start.
        A declared stream whose settings differ is brought to these, which only an administrator
        may do on a server with permissions: for another user this raises `StreamSettingsDiffer`."""
        for config in (self.stream_config(), *(objects.stream_config(bucket) for bucket in self.buckets)):
            try:
                await self.js.add_stream(config)
            except BadRequestError as error:
                if error.err_code != STREAM_CONFIG_CONFLICT:
                    raise
                await self._update_stream(config)

    async def _update_stream(self, config: api.StreamConfig) -> None:
        # A refused update gets no reply: without watching for the refusal, it would end only in
        # the request's timeout, saying nothing of why.
        subject = f"{api.DEFAULT_PREFIX}.STREAM.UPDATE.{config.name}".lower()
        refused = self._awaiting_refusal[subject] = asyncio.get_running_loop().create_future()
        updating = asyncio.ensure_future(self.js.update_stream(config))
        try:
            await asyncio.wait([updating, refused], return_when=asyncio.FIRST_COMPLETED)
        finally:
            del self._awaiting_refusal[subject]
            updating.cancel()  # refused, it would wait for its timeout
        if refused.done():
            raise StreamSettingsDiffer(
                f"stream {config.name}'s settings differ from this release of Cadenza's, and this NATS user may "
                f"not change them: an administrator must declare them (`cadenza declare` as the NATS user admin, "
                f"or `cadenza up`, which does so itself)")
        updating.result()

    def _refused(self, error: str) -> None:
        """Note a permissions violation the server reported, for whoever awaits its subject's refusal."""
        error = error.lower()
        if PERMISSIONS_VIOLATION in error:
            subject = error.split(PERMISSIONS_VIOLATION, 1)[1].strip().strip('"')
            if (refused := self._awaiting_refusal.get(subject)) and not refused.done():
                refused.set_result(None)

    @property
    def buckets(self) -> tuple[str, ...]:
        return self.clips_bucket, self.adapters_bucket, self.checkpoints_bucket, self.samples_bucket

    # --- publishing ------------------------------------------------------------------------------
    def _message(self, event: Event, request: str | None = None) -> tuple[str, bytes, dict[str, str]]:
        """The subject, bytes and headers of `event` (published for `request`, if given); raises
        `EventTooLarge` if the server would refuse it, before anything is sent."""
        data, headers = encode(Envelope.wrap(event)), {MSG_ID: event.idempotency_key()}
        if request is not None:
            headers[REQUEST_HEADER] = request
        size = len(data) + sum(len(key) + len(value) + HEADER_LINE_OVERHEAD for key, value in headers.items())
        if size > self.nc.max_payload:
            fields = {name: len(json.dumps(value)) for name, value in event.model_dump(mode="json").items()}
            largest = max(fields, key=fields.__getitem__)
            raise EventTooLarge(
                f"{event.event_type()} would be {size} bytes on the bus, over its limit of {self.nc.max_payload} "
                f"bytes; its largest field is '{largest}' ({fields[largest]} bytes)"
            )
        return event.subject(self.subject_root), data, headers

    def _checked(self, ack: api.PubAck, event: Event) -> int:
        if ack.stream != self.stream:
            raise PublishError(f"{event.event_type()} was stored in stream {ack.stream!r}, expected {self.stream!r}")
        return ack.seq

    async def publish(self, event: Event) -> int:
        """Store one event; return its stream sequence (the original's, if it is a duplicate)."""
        subject, data, headers = self._message(event)
        ack = await self.js.publish(subject, data, stream=self.stream, headers=headers)
        return await self._stored(ack, event)

    async def _stored(self, ack: api.PubAck, event: Event, request: str | None = None) -> int:
        """The sequence of `event`, which the server answered with `ack`: the message a duplicate
        matched, if on the event's subject; else the event's, stored under an id no one can foresee
        unless its subject's last message already is the event stored that way (a retry)."""
        seq = self._checked(ack, event)
        if not ack.duplicate or (await self.js.get_msg(self.stream, seq)).subject == event.subject(self.subject_root):
            return seq
        log.warning("%s's id %r was taken by message %d on another subject", event.event_type(),
                    event.idempotency_key(), seq)
        if (stored := await self.stored_seq(event)) is not None:
            return stored
        subject, data, headers = self._message(event, request)
        headers[MSG_ID] += TAKEN_ID_SEPARATOR + secrets.token_hex(16)
        return self._checked(await self.js.publish(subject, data, stream=self.stream, headers=headers), event)

    async def stored_seq(self, event: Event) -> int | None:
        """The stream sequence of `event` if the last message on its subject is `event` (carries
        its idempotency key), whenever it was published; else None. Only the last one is looked
        at: it costs one request, where `request_message` may read the whole subject."""
        last = await self._last_message(event.subject(self.subject_root))
        key, msg_id = event.idempotency_key(), (last.headers or {}).get(MSG_ID, "") if last else ""
        if last is not None and (msg_id == key or msg_id.startswith(key + TAKEN_ID_SEPARATOR)):
            return last.seq
        return None

    async def request_message(self, subject: str, request: str) -> api.RawStreamMsg | None:
        """The last message on `subject` published for `request` (see `publish_many`), else None.
        The subject's last message is looked at first, as it usually is the one; else its earlier
        messages are read, their headers only (about 15 ms per 1,000 messages)."""
        last = await self._last_message(subject)
        if last is None or (last.headers or {}).get(REQUEST_HEADER) == request:
            return last
        reader = await EventReader.open(self.nc, self.js, self.stream, subject, 1, headers_only=True)
        try:
            found = [seq async for seq, headers in reader.headers_before(last.seq)
                     if headers.get(REQUEST_HEADER) == request]
        finally:
            await reader.close()
        return await self.js.get_msg(self.stream, found[-1]) if found else None

    async def _last_message(self, subject: str) -> api.RawStreamMsg | None:
        try:
            return await self.js.get_last_msg(self.stream, subject)
        except NotFoundError:
            return None

    async def publish_many(self, events: Iterable[Event], request: str | None = None) -> list[int]:
        """Store events in order, pipelined: acks are awaited per batch of 1,000, not one by one.
        `request` names the API request they are published for (one sent with an Idempotency-Key),
        so that its retry finds them (`request_message`).

        If any publish fails this raises after its batch; the events before it may be stored.
        Publishing the same list again is safe: the stored ones come back as duplicates.
        """
        events = list(events)
        sequences: list[int] = []
        for start in range(0, len(events), PUBLISH_BATCH):
            sequences += await self._publish_batch(events[start:start + PUBLISH_BATCH], request)
        return sequences

    async def _publish_batch(self, batch: list[Event], request: str | None) -> list[int]:
        # nats-py's publish_async never resolves the future of a publish the server rejects (its
        # reply handler raises instead), so acks are collected here: message i asks for its ack
        # on <inbox>.<i>.
        inbox = self.nc.new_inbox()
        acks = await self.nc.subscribe(f"{inbox}.*", max_msgs=len(batch))
        try:
            for index, event in enumerate(batch):
                subject, data, headers = self._message(event, request)
                headers[api.Header.EXPECTED_STREAM] = self.stream
                await self.nc.publish(subject, data, reply=f"{inbox}.{index}", headers=headers)
            replies: dict[int, Msg] = {}
            deadline = asyncio.get_running_loop().time() + REQUEST_TIMEOUT
            while len(replies) < len(batch):
                remaining = deadline - asyncio.get_running_loop().time()
                try:
                    reply = await acks.next_msg(timeout=max(remaining, 0.001))
                except nats.errors.TimeoutError:
                    raise PublishTimeout(
                        f"{len(batch) - len(replies)} of {len(batch)} publishes got no ack within {REQUEST_TIMEOUT} s"
                    ) from None
                replies[int(reply.subject.rsplit(".", 1)[1])] = reply
        finally:
            await acks.unsubscribe()
        return [await self._stored(_pub_ack(replies[index]), event, request) for index, event in enumerate(batch)]

    # --- reading ---------------------------------------------------------------------------------
    async def reader(self, start_seq: int = 1, subject_filter: str | None = None) -> EventReader:
        """Open an `EventReader` on `subject_filter` (default: the whole stream) from `start_seq`."""
        subject_filter = subject_filter or subjects.subject_filter(self.subject_root)
        return await EventReader.open(self.nc, self.js, self.stream, subject_filter, start_seq)

    async def events(self, subject_filter: str | None = None, start_seq: int = 1, follow: bool = False,
                     needed: Collection[str] = ()) -> AsyncIterator[StoredEvent]:
        """Every readable event on `subject_filter` from `start_seq` in stream order; without
        `follow`, stop at the end of the stream as it was when reading began. See `next_batch`
        for unreadable events and `needed`."""
        reader = await self.reader(start_seq, subject_filter)
        try:
            if reader.pending_at_start == 0 and not follow:
                return
            while True:
                batch = await reader.next_batch(needed=needed)
                for stored, pending_after in batch:
                    yield stored
                    if pending_after == 0 and not follow:
                        return
                if reader.pending == 0 and not follow:  # the batch ended on skipped, unreadable events
                    return
                if not batch:
                    await reader.check_alive()
        finally:
            await reader.close()

    async def history(self, aggregate: str, aggregate_id: str, needed: Collection[str] = ()) -> list[StoredEvent]:
        """One aggregate's events in order (the audit view), e.g. `history("run", run_id)`."""
        subject = subjects.subject_filter(self.subject_root, aggregate, aggregate_id)
        return [stored async for stored in self.events(subject, needed=needed)]

    async def last_seq(self) -> int:
        info = await self.js.stream_info(self.stream)
        return info.state.last_seq

    # --- objects (events/objects.py) -------------------------------------------------------------
    async def put_object(self, bucket: str, name: str, data: bytes) -> ObjectRef:
        """Store `data` as `name`; an object of that name with the same bytes is kept as it is."""
        return await objects.put(self.js, bucket, name, io.BytesIO(data), self.nc.max_payload)

    async def put_file(self, bucket: str, name: str, path: Path) -> ObjectRef:
        """Upload a file chunk by chunk without reading it whole into memory; an object of that
        name with the same bytes is kept as it is (an upload retried after its answer was lost)."""
        with open(path, "rb") as file:
            return await objects.put(self.js, bucket, name, file, self.nc.max_payload)

    async def delete_object(self, ref: ObjectRef) -> None:
        """Delete the object; one already gone is no error (deleting is retried after failures)."""
        await objects.delete(self.js, ref)

    async def get_object(self, ref: ObjectRef) -> bytes:
        """The object's bytes, checked against the size and sha256 the reference carries."""
        buffer = io.BytesIO()
        await objects.read(self.js, ref, buffer.write)
        return buffer.getvalue()

    async def get_file(self, ref: ObjectRef, path: Path) -> Path:
        """Stream the object into `path`: written under a temporary name beside it and renamed
        only once verified, so `path` never holds a partial or corrupted object."""
        descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        try:
            with os.fdopen(descriptor, "wb") as file:
                await objects.read(self.js, ref, file.write)
            os.replace(partial, path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        return path


def tls_context(ca_file: Path | None) -> ssl.SSLContext | None:
    """Trust `ca_file` for `tls://` servers; None: the client's default (the system's CAs)."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else None


def _pub_ack(reply: Msg) -> api.PubAck:
    if reply.headers and reply.headers.get(api.Header.STATUS) == "503":
        raise NoStreamResponseError
    response = json.loads(reply.data)
    if "error" in response:
        APIError.from_error(response["error"])  # raises the matching nats error
    return api.PubAck.from_response(response)
