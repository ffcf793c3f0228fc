"""Runtime settings shared by every service, read from the environment once at start-up."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from nats.aio.client import DEFAULT_INBOX_PREFIX

from events.bus import Bus
from events.urls import redacted
from services import nats_users


def default_data_dir() -> Path:
    # As root the embedded PostgreSQL runs as the `postgres` user, which cannot enter /root.
    if os.geteuid() == 0:
        return Path("/var/lib/cadenza")
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "cadenza"


@dataclass(frozen=True)
class Settings:
    """Where the servers are and how Cadenza names its things on them.

    `namespace` prefixes everything Cadenza creates on NATS, so several installations (or test
    sessions) can share one server: stream `<NAMESPACE>` (upper case), subjects `<namespace>.>`,
    object-store buckets `<namespace>-clips`, `<namespace>-adapters`, `<namespace>-checkpoints`.
    """

    nats_url: str = ""
    database_url: str = ""
    namespace: str = "cadenza"
    data_dir: Path = field(default_factory=default_data_dir)
    max_upload_bytes: int = 200 * 1024 * 1024
    # What one uploaded file may decode to, and what one dataset may hold.
    max_audio_seconds: float = 600.0
    max_audio_channels: int = 2
    max_audio_expansion: float = 32.0
    max_dataset_bytes: int = 5 * 1024**3
    max_dataset_clips: int = 10_000
    cache_dir: Path = field(default_factory=lambda: default_data_dir() / "cache")
    # With a token, every /api request must carry it (services/api/auth.py); empty: no check.
    api_token: str = ""
    nats_creds_file: Path | None = None
    nats_ca_file: Path | None = None
    # The password of the user `nats_url` names, kept out of the URL (and so out of compose.yaml).
    nats_password_file: Path | None = None
    # Where this process's replies come: a user of Cadenza's NATS users may subscribe only under its
    # own prefix (services/nats_users.py); other servers usually allow nats' default.
    nats_inbox_prefix: str = DEFAULT_INBOX_PREFIX.decode()
    # Where a `base_model` that is a local folder may be: inside one of these (services/model_dirs.py).
    model_dirs: tuple[Path, ...] = field(default_factory=lambda: (default_data_dir() / "models",))
    # A NATS URL per service (`cadenza up` gives each its own user); the others use `nats_url`.
    service_nats_urls: Mapping[str, str] = field(default_factory=dict)
    # Seconds any one database command or connection attempt may take: a stopped or hung
    # PostgreSQL then costs a bounded wait, never a hang.
    database_timeout: float = 10.0
    # Seconds an API command waits for the registry to fold its events before answering 503: the
    # command is stored by then, and a retry with its Idempotency-Key finds it.
    projection_timeout: float = 10.0

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Settings from `NATS_URL`, `DATABASE_URL`, `CADENZA_*`; keyword overrides win."""
        env = os.environ
        # Paths are made absolute as the folder the process was started in means them: the services
        # then run in an empty working directory of their own (services.supervisor.in_empty_folder).
        data_dir = Path(env.get("CADENZA_DATA_DIR") or default_data_dir()).absolute()
        settings = cls(
            nats_url=env.get("NATS_URL", ""),
            database_url=env.get("DATABASE_URL", ""),
            namespace=env.get("CADENZA_NAMESPACE", "cadenza"),
            data_dir=data_dir,
            max_upload_bytes=int(env.get("CADENZA_MAX_UPLOAD_BYTES", cls.max_upload_bytes)),
            max_audio_seconds=float(env.get("CADENZA_MAX_AUDIO_SECONDS", cls.max_audio_seconds)),
            max_audio_channels=int(env.get("CADENZA_MAX_AUDIO_CHANNELS", cls.max_audio_channels)),
            max_audio_expansion=float(env.get("CADENZA_MAX_AUDIO_EXPANSION", cls.max_audio_expansion)),
            max_dataset_bytes=int(env.get("CADENZA_MAX_DATASET_BYTES", cls.max_dataset_bytes)),
            max_dataset_clips=int(env.get("CADENZA_MAX_DATASET_CLIPS", cls.max_dataset_clips)),
            cache_dir=Path(env.get("CADENZA_CACHE_DIR") or data_dir / "cache").absolute(),
            api_token=env.get("CADENZA_API_TOKEN", ""),
            nats_creds_file=Path(env["CADENZA_NATS_CREDS"]).absolute() if env.get("CADENZA_NATS_CREDS") else None,
            nats_ca_file=Path(env["CADENZA_NATS_CA"]).absolute() if env.get("CADENZA_NATS_CA") else None,
            nats_password_file=(Path(env["CADENZA_NATS_PASSWORD_FILE"]).absolute()
                                if env.get("CADENZA_NATS_PASSWORD_FILE") else None),
            nats_inbox_prefix=env.get("CADENZA_NATS_INBOX_PREFIX") or cls.nats_inbox_prefix,
            model_dirs=tuple(Path(folder).absolute() for folder in
                             (env.get("CADENZA_MODEL_DIRS") or str(data_dir / "models")).split(os.pathsep) if folder),
            database_timeout=float(env.get("CADENZA_DATABASE_TIMEOUT", cls.database_timeout)),
            projection_timeout=float(env.get("CADENZA_PROJECTION_TIMEOUT", cls.projection_timeout)),
        )
        return replace(settings, **overrides)

    def with_servers(self, nats_url: str, database_url: str) -> "Settings":
        return replace(self, nats_url=nats_url, database_url=database_url)

    def for_service(self, name: str) -> "Settings":
        """The settings service `name` runs with: its own NATS user and inbox where it has a URL of its own."""
        if name not in self.service_nats_urls:
            return self
        return replace(self, nats_url=self.service_nats_urls[name], nats_inbox_prefix=nats_users.inbox_prefix(name))

    async def connect_bus(self) -> Bus:
        """The process's connection to NATS: this URL, namespace, credentials and inbox (the one place
        they are put together, so no service connects without its password file, creds file, CA or inbox)."""
        url = self.nats_url
        if self.nats_password_file:
            user = urlsplit(url).username
            if not user:
                raise ValueError(f"CADENZA_NATS_PASSWORD_FILE is the password of the user NATS_URL names, and "
                                 f"{redacted(url)} names none (nats://USER@host:port)")
            url = nats_users.user_url(url, unquote(user), self.nats_password_file.read_text().strip())
        return await Bus.connect(url, self.namespace, self.nats_creds_file, self.nats_ca_file, self.nats_inbox_prefix)
