"""Write-once object buckets on JetStream.

A bucket has the layout of a NATS object store, so `nats object` tools can list and fetch it:
stream `OBJ_<bucket>`, an object's bytes in chunks on `$O.<bucket>.C.<nuid>`, its metadata (name,
size, digest, nuid) as JSON on `$O.<bucket>.M.<base64url of its name>`.

Unlike a NATS object store, the bucket's stream refuses the rollup header, so publishing can only
add messages. A service allowed to write a bucket then cannot erase what is in it (a rollup on a
chunk subject would drop every chunk before it) nor hide it (a "deleted" metadata message, which is
all a delete can publish, changes nothing here). An object is read the way events refer to it, by
name, size and sha256: the first metadata message on the name with that size and digest, then its
chunks from the start of their subject up to that size. What is published after them on those
subjects (other metadata, more chunks) does not change what a reference reads. Removing messages
takes the stream's purge request, which permissions give only to those who may delete.

A message *among* an object's chunks would corrupt it, and on a server where users share the
streams' account (one not set up by Cadenza) any user can have one stored on a subject of its
choosing: the server sends its answer to a JetStream API request to the request's reply subject,
whatever it is, and streams store it. So chunks go to a subject no one can foresee, and an upload
whose subject holds more messages than it sent is made again under another.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import BinaryIO

from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError, ObjectNotFoundError

from events.base import ObjectRef

# 4× the NATS object store's default: a quarter of the round trips, half the server's default
# message limit (a server with a lower limit gets chunks of its limit).
CHUNK_SIZE = 512 * 1024
DIGEST_PREFIX = "SHA-256="
UPLOAD_ATTEMPTS = 3  # uploads of one object before `put` gives up on messages coming between its chunks


class ObjectCorrupted(RuntimeError):
    pass


def stream_config(bucket: str) -> api.StreamConfig:
    """The bucket's stream: a NATS object store's, but for the rollups it refuses."""
    return api.StreamConfig(
        name=_stream(bucket),
        subjects=[f"$O.{bucket}.C.>", f"$O.{bucket}.M.>"],
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.NEW,
        allow_rollup_hdrs=False,
        allow_direct=True,
    )


async def put(js: JetStreamContext, bucket: str, name: str, file: BinaryIO, max_payload: int) -> ObjectRef:
    """Store the bytes of `file` as `name`, in chunks of at most `max_payload` bytes (the server's
    message limit). An object of that name with the same bytes is kept as it is (an upload retried
    after its answer was lost); other bytes under a stored name are stored beside it, and each
    reference reads its own."""
    file.seek(0)
    sha256 = (await asyncio.to_thread(hashlib.file_digest, file, "sha256")).hexdigest()  # MBs: off the loop
    size = file.seek(0, io.SEEK_END)
    ref = ObjectRef(bucket=bucket, name=name, sha256=sha256, size=size)
    with contextlib.suppress(ObjectNotFoundError):
        await _metadata(js, ref)
        return ref
    for _ in range(UPLOAD_ATTEMPTS):
        nuid, chunks = await _upload(js, bucket, file, max_payload)
        subject = _chunks_subject(bucket, nuid)
        stored = (await js.stream_info(_stream(bucket), subjects_filter=subject)).state.subjects or {}
        if stored.get(subject, 0) == chunks:
            break
    else:
        raise ObjectCorrupted(f"object {bucket}/{name}: other messages came between its chunks in each of "
                              f"{UPLOAD_ATTEMPTS} uploads")
    info = api.ObjectInfo(
        name=name, bucket=bucket, nuid=nuid, size=size, chunks=chunks,
        mtime=datetime.now(timezone.utc).isoformat(),
        digest=DIGEST_PREFIX + base64.urlsafe_b64encode(bytes.fromhex(sha256)).decode(),
        options=api.ObjectMetaOptions(max_chunk_size=min(CHUNK_SIZE, max_payload)),
    )
    await js.publish(_metadata_subject(bucket, name), json.dumps(info.as_dict()).encode())
    return ref


async def _upload(js: JetStreamContext, bucket: str, file: BinaryIO, max_payload: int) -> tuple[str, int]:
    """Publish the bytes of `file` in chunks on a new subject; return its nuid and the number of chunks."""
    nuid = _new_nuid()
    file.seek(0)
    chunks = 0
    while chunk := file.read(min(CHUNK_SIZE, max_payload)):
        await js.publish(_chunks_subject(bucket, nuid), chunk)
        chunks += 1
    return nuid, chunks


def _new_nuid() -> str:
    """What an object's chunks are named by, as a NATS object store's nuid (22 characters), but
    random throughout: a nuid's sequence would tell the next upload's from this one's."""
    return secrets.token_hex(11)


async def read(js: JetStreamContext, ref: ObjectRef, write: Callable[[bytes], object]) -> None:
    """Pass the object's bytes to `write`, chunk by chunk; raise ObjectCorrupted (after writing)
    when they are not the size and sha256 the reference carries."""
    info = await _metadata(js, ref)
    subject, seq = _chunks_subject(ref.bucket, info.nuid), 1
    size, digest = 0, hashlib.sha256()
    while size < ref.size:
        try:
            message = await js.get_msg(_stream(ref.bucket), seq=seq, subject=subject, next=True)
        except NotFoundError:
            break
        write(message.data)
        digest.update(message.data)
        size += len(message.data)
        seq = message.seq + 1
    if (size, digest.hexdigest()) != (ref.size, ref.sha256):
        raise ObjectCorrupted(f"object {ref.bucket}/{ref.name}: expected {ref.size} bytes with sha256 {ref.sha256}, "
                              f"got {size} bytes with sha256 {digest.hexdigest()}")


async def delete(js: JetStreamContext, ref: ObjectRef) -> None:
    """Purge every object stored under the reference's name, chunks and metadata; one already
    gone is no error (deleting is retried after failures)."""
    stream, metadata_subject = _stream(ref.bucket), _metadata_subject(ref.bucket, ref.name)
    async for info in _all_metadata(js, ref.bucket, ref.name):
        await js.purge_stream(stream, subject=_chunks_subject(ref.bucket, info.nuid))
    await js.purge_stream(stream, subject=metadata_subject)


async def _metadata(js: JetStreamContext, ref: ObjectRef) -> api.ObjectInfo:
    """The first metadata stored under the reference's name with its size and sha256."""
    digest = DIGEST_PREFIX + base64.urlsafe_b64encode(bytes.fromhex(ref.sha256)).decode()
    async for info in _all_metadata(js, ref.bucket, ref.name):
        if info.size == ref.size and info.digest == digest and info.nuid:
            return info
    raise ObjectNotFoundError


async def _all_metadata(js: JetStreamContext, bucket: str, name: str) -> AsyncIterator[api.ObjectInfo]:
    """Each metadata message under `name`, oldest first; messages that are not object metadata
    (anyone writing the bucket may publish there) are passed over."""
    subject, seq = _metadata_subject(bucket, name), 1
    while True:
        try:
            message = await js.get_msg(_stream(bucket), seq=seq, subject=subject, next=True)
        except NotFoundError:
            return
        seq = message.seq + 1
        try:
            info = api.ObjectInfo.from_response(json.loads(message.data or b""))
        except (ValueError, TypeError, AttributeError):
            continue
        if info.name == name and not info.deleted:
            yield info


def _stream(bucket: str) -> str:
    return f"OBJ_{bucket}"


def _chunks_subject(bucket: str, nuid: str) -> str:
    return f"$O.{bucket}.C.{nuid}"


def _metadata_subject(bucket: str, name: str) -> str:
    return f"$O.{bucket}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"
