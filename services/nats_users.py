"""The users of `cadenza up`'s private nats-server and what each may do.

Each service connects as its own user, allowed to publish only the events it produces and to read
and write only the buckets it uses; anonymous connections are refused. Programs outside Cadenza that
follow its events (a deployer of new adapters, say) connect as `subscriber`: they read the stream
through consumers of their own and download adapters and samples, and publish and delete nothing. Deleting, purging or
reconfiguring a stream and deleting a consumer are JetStream API requests (`$JS.API.STREAM.DELETE.…`
and so on) that only `admin` may send, but for the trainers' purges of their own checkpoints.
Services may *create* Cadenza's streams, which JetStream answers as a no-op for an existing stream
with the same configuration and refuses for another. A work queue's durable consumer may be bound,
changed and fetched from only by its own service, and the deployment example's only by `subscriber`.
Any other consumer is reachable by whoever knows its name, so no user but `admin` may list consumers
(readers name theirs at random), nor create one on the subject that names it in the request's body
alone, out of the permissions' sight. Each user subscribes only under its own inbox
prefix (`_INBOX_<user>`, where its connections receive request replies and consumer deliveries), so
no service reads another's replies.

Passwords are generated once and kept in `<data folder>/nats/users.json` (0600); the server's
configuration is written next to it (0600) at every start, from this code. `cadenza nats-config`
writes the same into a folder for compose.yaml's NATS, with each service's password, and the admin's,
also alone in `<folder>/<user>/password`.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from events.base import Event
from events.catalogue import (
    AdapterSaved, CheckpointSaved, ClipAdded, ClipRemoved, ComparisonCreated, ComparisonVoted, DatasetCreated,
    DatasetDrawnFromFeedback, DatasetExported, ExperimentCreated, ExperimentUpdated, GenerationCancelled,
    GenerationCancelRequested, GenerationCompleted, GenerationFailed, GenerationHandedBack, GenerationProgressed,
    GenerationRequested, GenerationStarted, LossReported, PreferencePairAdded, PreferencePairRemoved,
    PreferenceRecorded, RunAttemptFailed, RunCancelled, RunCancelRequested, RunCompleted, RunFailed, RunHandedBack,
    RunLogged, RunRequested, RunStarted, SampleFavorited, SampleGenerated, SampleRated, SampleTagged,
    SampleUnfavorited, SampleUntagged,
)
from services.private_files import write_private

ADMIN = "admin"
SERVICES = ("api", "registry", "trainer", "generator")
SUBSCRIBER = "subscriber"
USERS = (ADMIN, *SERVICES, SUBSCRIBER)

# The events each service publishes: commands come from the API, facts about work from the workers.
# Cancelling something still queued is the API's to say, so both publish the *Cancelled events.
PUBLISHES: dict[str, tuple[type[Event], ...]] = {
    "api": (DatasetCreated, ClipAdded, PreferencePairAdded, ClipRemoved, PreferencePairRemoved, DatasetDrawnFromFeedback,
            ExperimentCreated, ExperimentUpdated, RunRequested, RunCancelRequested, RunCancelled, GenerationRequested,
            GenerationCancelRequested, GenerationCancelled, SampleRated, SampleTagged, SampleUntagged,
            SampleFavorited, SampleUnfavorited, PreferenceRecorded, ComparisonCreated, ComparisonVoted),
    "registry": (),
    "trainer": (RunStarted, DatasetExported, LossReported, RunLogged, CheckpointSaved, AdapterSaved, RunCompleted,
                RunFailed, RunAttemptFailed, RunHandedBack, RunCancelled),
    "generator": (GenerationStarted, GenerationProgressed, SampleGenerated, GenerationCompleted, GenerationFailed,
                  GenerationHandedBack, GenerationCancelled),
}
# Events a service hears as they are published (plain subscriptions, not consumers).
WATCHES: dict[str, tuple[type[Event], ...]] = {
    "trainer": (RunCancelRequested, RunCancelled),
    "generator": (GenerationCancelRequested, GenerationCancelled, AdapterSaved),
}
# The durable consumer each worker service shares as its work queue.
WORK_QUEUES = {"trainer": "trainer", "generator": "generator"}
# Durable consumers of well-known names that only their user may create, change, fetch from and ack:
# the work queues, and the one the deployment example (examples/deploy_adapters.py) follows adapters with.
DURABLES = {**WORK_QUEUES, SUBSCRIBER: "deploy-adapters"}
# Buckets (by their suffix after `<namespace>-`) each service writes and reads.
WRITES = {"api": ("clips",), "trainer": ("checkpoints", "adapters"), "generator": ("samples",)}
READS = {"api": ("clips", "adapters", "samples"), "trainer": ("clips", "checkpoints"), "generator": ("adapters",),
         SUBSCRIBER: ("adapters", "samples")}
# Buckets whose objects a service deletes itself: the trainers' checkpoints, superseded as training
# goes on (services/trainer/retention.py). Every other object only an administrator deletes.
DELETES = {"trainer": ("checkpoints",)}
BUCKETS = ("clips", "adapters", "checkpoints", "samples")
PASSWORD_FILE = "password"


def permissions(user: str, namespace: str) -> dict[str, dict[str, list[str]]]:
    """The nats-server permissions of `user` for the Cadenza installation named `namespace`."""
    if user == ADMIN:
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    stream = namespace.upper()
    buckets = [f"OBJ_{namespace}-{bucket}" for bucket in BUCKETS]
    publish = [
        # reading what exists, and declaring it (see the module's docstring)
        "$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.STREAM.INFO.*",
        "$JS.API.CONSUMER.INFO.*.*",
        *(f"$JS.API.STREAM.CREATE.{name}" for name in (stream, *buckets)),
        # reading the event stream through consumers of its own, and its last message on a subject
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*", f"$JS.API.STREAM.MSG.GET.{stream}",
        *(f"{namespace}.{event.aggregate}.*.{event.event_name()}" for event in PUBLISHES.get(user, ())),
    ]
    if user == SUBSCRIBER:  # its durable consumers remember what it has handled (others' are denied below)
        publish.append(f"$JS.ACK.{stream}.>")
    # Cadenza reads objects message by message. Not by direct gets: the server sends an answer to
    # whatever reply subject a request names, unchecked, and streams store it; a direct get's answer
    # is the message's bytes alone, so a service could have the bytes it stored in its bucket
    # answered onto another's event subject. A message get answers in JSON no event parses as.
    publish += [f"$JS.API.STREAM.MSG.GET.OBJ_{namespace}-{bucket}" for bucket in (*READS.get(user, ()),
                                                                                *WRITES.get(user, ()))]
    if user == SUBSCRIBER:  # nats object stores (nats-py, the nats CLI) read an object through a consumer
        for bucket in READS[user]:
            name = f"OBJ_{namespace}-{bucket}"
            publish += [f"$JS.API.CONSUMER.CREATE.{name}", f"$JS.API.CONSUMER.CREATE.{name}.>", f"$JS.FC.{name}.>"]
    publish += [f"$O.{namespace}-{bucket}.{part}.>" for bucket in WRITES.get(user, ()) for part in ("C", "M")]
    publish += [f"$JS.API.STREAM.PURGE.OBJ_{namespace}-{bucket}" for bucket in DELETES.get(user, ())]
    deny = []
    for owner, durable in DURABLES.items():
        queue = [f"$JS.API.CONSUMER.CREATE.{stream}.{durable}", f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
                 f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}", f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
                 f"$JS.ACK.{stream}.{durable}.>"]
        if owner == user:
            publish += queue
        else:
            deny += queue
    subscribe = [f"{inbox_prefix(user)}.>", *(f"{namespace}.{event.aggregate}.*.{event.event_name()}"
                                              for event in WATCHES.get(user, ()))]
    return {"publish": {"allow": publish, "deny": deny}, "subscribe": {"allow": subscribe}}


def inbox_prefix(user: str) -> str:
    """The prefix of `user`'s inboxes: its connections must use it, as it may subscribe nowhere else."""
    return f"_INBOX_{user}"


def passwords(store: Path) -> dict[str, str]:
    """Each user's password, generated on first use and kept in `store/users.json` (0600)."""
    path = Path(store) / "users.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    if set(USERS) <= set(known):
        return known
    known |= {user: secrets.token_urlsafe(32) for user in USERS if user not in known}
    write_private(path, json.dumps(known, indent=2))
    return known


def write_server_config(store: Path, namespace: str, users: dict[str, str]) -> Path:
    """Write the nats-server configuration (users, passwords, permissions) into `store`; the
    listening address, JetStream and the storage folder are given on the server's command line."""
    config = {"authorization": {"users": [
        {"user": user, "password": users[user], "permissions": permissions(user, namespace)} for user in USERS
    ]}}
    path = Path(store) / "nats-server.conf"
    write_private(path, json.dumps(config, indent=2))  # nats-server reads JSON as its config format
    return path


def write_user_passwords(store: Path, users: dict[str, str]) -> None:
    """Each service's password, and the admin's (who declares the streams), alone in
    `store/<user>/password` (0600), so that a container can be given its own folder and no other password."""
    for user in (ADMIN, *SERVICES):
        folder = Path(store) / user
        folder.mkdir(mode=0o700, exist_ok=True)
        write_private(folder / PASSWORD_FILE, users[user])


def user_url(url: str, user: str, password: str) -> str:
    """`url` with `user:password@` in it."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))
