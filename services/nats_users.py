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

JetStream, its streams and `admin` are in one account; every other user is alone in an account of its
own, which imports from JetStream's, as services, the API requests, acks and subjects it may publish
on (so each answer, a PubAck too, comes back as the response), and as streams the events it watches.
The server sends a JetStream API answer to whatever reply subject the request names, unchecked; in
its own account that subject is the requester's alone, and no stream stores what is sent there.

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
# The account that holds JetStream (its streams and consumers) and the admin.
JETSTREAM_ACCOUNT = "JETSTREAM"


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
    # whatever reply subject a request names, unchecked, and where users share JetStream's account
    # streams store it; a direct get's answer is the message's bytes alone, so a service could have
    # the bytes it stored in its bucket answered onto another's event subject. A message get answers
    # in JSON no event parses as.
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
    """Write the nats-server configuration (accounts, users, passwords, permissions) into `store`;
    the listening address, JetStream and the storage folder are given on the server's command line."""
    path = Path(store) / "nats-server.conf"
    # nats-server reads JSON as its config format
    write_private(path, json.dumps({"accounts": accounts(namespace, users)}, indent=2))
    return path


def accounts(namespace: str, users: dict[str, str]) -> dict[str, dict]:
    """The server's accounts: JetStream and `admin` in one, every other user alone in its own,
    importing what its permissions let it use. JetStream then answers a request into the
    requester's account, never onto the streams' subjects."""
    account = {user: JETSTREAM_ACCOUNT if user == ADMIN else user for user in USERS}
    exports: dict[str, dict[tuple[str, str], list[str]]] = {name: {} for name in account.values()}
    configured = {}
    for user in USERS:
        rights = permissions(user, namespace)
        configured[user] = {"users": [{"user": user, "password": users[user], "permissions": rights}]}
        if user == ADMIN:
            continue
        imports = [(JETSTREAM_ACCOUNT, "service", subject) for subject in _outermost(rights["publish"]["allow"])]
        imports += [(source, "stream", subject) for source, subject in _heard(user, namespace)]
        for source, kind, subject in imports:
            exports[source].setdefault((kind, subject), []).append(user)
        configured[user]["imports"] = [{kind: {"account": source, "subject": subject}}
                                       for source, kind, subject in imports]
    configured[ADMIN]["jetstream"] = "enabled"
    for user, name in account.items():
        configured[user]["exports"] = [
            {kind: subject, "accounts": importers, **({"response_type": "stream"} if _streamed(subject) else {})}
            for (kind, subject), importers in exports[name].items()]
    return {account[user]: entry for user, entry in configured.items()}


def _heard(user: str, namespace: str) -> list[tuple[str, str]]:
    """What `user` hears other than answers, as (the account it comes from, the subject): each event
    it watches, from every other service that publishes it (the server passes nothing that came into
    JetStream's account through a service import on to another account) and from JetStream's, where
    the admin publishes; and the push consumers' deliveries to the subscriber's inboxes (object-store
    clients read through those)."""
    heard = []
    for event in WATCHES.get(user, ()):
        subject = f"{namespace}.{event.aggregate}.*.{event.event_name()}"
        publishers = [service for service in SERVICES if service != user and event in PUBLISHES[service]]
        heard += [(source, subject) for source in (*publishers, JETSTREAM_ACCOUNT)]
    if user == SUBSCRIBER:
        heard.append((JETSTREAM_ACCOUNT, f"{inbox_prefix(user)}.>"))
    return heard


def _streamed(subject: str) -> bool:
    """Whether a request on `subject` is answered by many messages: a pull request's deliveries."""
    return subject.startswith("$JS.API.CONSUMER.MSG.NEXT.")


def _outermost(subjects: list[str]) -> list[str]:
    """`subjects` less those another of them covers: a message matching two imports of one account
    would be forwarded twice."""
    unique = list(dict.fromkeys(subjects))
    return [subject for subject in unique if not any(other != subject and _covers(other, subject) for other in unique)]


def _covers(pattern: str, subject: str) -> bool:
    """Whether every subject `subject` matches also matches `pattern` (both may have wildcards)."""
    wanted, given = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(given) > index
        if index >= len(given) or (token != "*" and token != given[index]) or (token == "*" and given[index] == ">"):
            return False
    return len(given) == len(wanted)


def move_streams_into_their_account(store: Path) -> None:
    """Move what JetStream stored under `store` (its `-sd` folder) in the server's default account,
    where an earlier release kept the streams, to JetStream's own account, where the server now
    looks for them (it keeps each account's streams in `jetstream/<account>`)."""
    default, own = Path(store) / "jetstream" / "$G", Path(store) / "jetstream" / JETSTREAM_ACCOUNT
    if default.is_dir() and not own.exists():
        default.rename(own)


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
