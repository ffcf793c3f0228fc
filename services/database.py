"""The PostgreSQL connection pool every service opens, with its timeouts bounded."""
from __future__ import annotations

from typing import Any

import asyncpg

from services.settings import Settings


async def create_pool(settings: Settings, **options: Any) -> asyncpg.Pool:
    """A pool whose connection attempts and commands each give up after `settings.database_timeout`
    seconds with a `TimeoutError` (a transient fault, see services.faults)."""
    return await asyncpg.create_pool(settings.database_url, timeout=settings.database_timeout,
                                     command_timeout=settings.database_timeout, **options)
