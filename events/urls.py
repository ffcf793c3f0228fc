"""NATS URLs as logs and messages may show them: without the credentials they can carry."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redacted(url: str) -> str:
    """`url` (or several, comma-separated) without credentials, for logs and messages."""
    return ",".join(_without_credentials(part.strip()) for part in url.split(","))


def _without_credentials(url: str) -> str:
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
