"""What a deployment service does with Cadenza's events, using nothing but nats-py.

It waits for `AdapterSaved` events (subject `<namespace>.run.*.adapter_saved`), downloads each adapter
from its bucket (see `download`), checks its sha256 against the event and saves it as
`<out>/<adapter id>.zip`, printing one JSON line per adapter. A durable consumer remembers what was handled, so a restarted
deployer picks up where it left off and sees every adapter once.

    python examples/deploy_adapters.py --nats-url nats://127.0.0.1:4222 --out adapters/ [--count 1]

On `cadenza up`'s private nats-server, connect as the `subscriber` user (its password is in the
users.json that `cadenza up` names), which may follow events and download adapters but change
nothing, and under that user's inbox prefix:

    python examples/deploy_adapters.py --nats-url nats://subscriber:PASSWORD@127.0.0.1:4222 \
        --inbox-prefix _INBOX_subscriber --out adapters/

The event contract is docs/asyncapi.json; events are JSON envelopes whose `payload` holds the event.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path

import nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from nats.errors import TimeoutError as FetchTimeout


async def download(js: JetStreamContext, ref: dict) -> bytes:
    """The bytes an event's object reference names. Buckets have the NATS object-store layout, but
    a name may hold more than one object: the reference's is the first metadata message on the
    name with its size and digest, and its bytes are the first `size` bytes on its chunks' subject.
    Raises NotFoundError when no such object is stored."""
    bucket, stream = ref["bucket"], f"OBJ_{ref['bucket']}"
    metadata = f"$O.{bucket}.M.{base64.urlsafe_b64encode(ref['name'].encode()).decode()}"
    digest = "SHA-256=" + base64.urlsafe_b64encode(bytes.fromhex(ref["sha256"])).decode()
    seq = 1
    while True:  # the server answers NotFoundError past the last message
        message = await js.get_msg(stream, seq=seq, subject=metadata, next=True)
        seq = message.seq + 1
        with contextlib.suppress(ValueError, AttributeError):  # anything else published there
            info = json.loads(message.data)
            if (info.get("size"), info.get("digest")) == (ref["size"], digest) and not info.get("deleted"):
                break
    data, seq = bytearray(), 1
    while len(data) < ref["size"]:
        chunk = await js.get_msg(stream, seq=seq, subject=f"$O.{bucket}.C.{info['nuid']}", next=True)
        data += chunk.data
        seq = chunk.seq + 1
    return bytes(data)


async def deploy(nats_url: str, inbox_prefix: str, namespace: str, out: Path, count: int, durable: str) -> None:
    connection = await nats.connect(nats_url, inbox_prefix=inbox_prefix)
    js = connection.jetstream()
    subscription = await js.pull_subscribe(
        f"{namespace}.run.*.adapter_saved",
        durable=durable,
        stream=namespace.upper(),
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT, ack_wait=60),
    )
    out.mkdir(parents=True, exist_ok=True)
    deployed = 0
    try:
        while count == 0 or deployed < count:
            try:
                [message] = await subscription.fetch(1, timeout=5)
            except FetchTimeout:  # nothing new yet
                continue
            event = json.loads(message.data)["payload"]
            ref = event["adapter"]
            try:
                data = await download(js, ref)
            except NotFoundError:
                print(f"adapter {event['adapter_id']}: {ref['bucket']}/{ref['name']} is not stored; not deployed",
                      file=sys.stderr)
                await message.term()
                continue
            sha256 = hashlib.sha256(data).hexdigest()
            if sha256 != ref["sha256"]:
                print(f"adapter {event['adapter_id']}: sha256 {sha256} differs from the event's {ref['sha256']}; "
                      "not deployed", file=sys.stderr)
                await message.term()  # the same bytes will not get better on a retry
                continue
            path = out / f"{event['adapter_id']}.zip"
            path.write_bytes(data)
            print(json.dumps({"adapter_id": event["adapter_id"], "name": event["name"], "run_id": event["run_id"],
                              "base_model": event["base_model"], "sha256": sha256, "path": str(path)}), flush=True)
            await message.ack()
            deployed += 1
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--inbox-prefix", default="_INBOX",
                        help="where replies come to; a user with permissions may subscribe only under its own")
    parser.add_argument("--namespace", default=os.environ.get("CADENZA_NAMESPACE", "cadenza"))
    parser.add_argument("--out", type=Path, default=Path("deployed-adapters"), help="where adapters are saved")
    parser.add_argument("--count", type=int, default=0, help="exit after this many adapters (0: run forever)")
    parser.add_argument("--durable", default="deploy-adapters", help="consumer name: its position survives restarts")
    args = parser.parse_args()
    try:
        asyncio.run(deploy(args.nats_url, args.inbox_prefix, args.namespace, args.out, args.count, args.durable))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
