"""The PostgreSQL connection pool every service opens, with its timeouts bounded."""
from __future__ import annotations

from typing import Any

import asyncpg

from services.settings import Settings


async def create_pool(settings: Settings, **options: Any) -> asyncpg.Pool:
    """A pool whose connection attempts and commands each give up after `settings.database_timeout`
    seconds with a `TimeoutError` (a transient fault, see services.faults).

    A released connection goes back without asyncpg's reset query (advisory unlocks, CLOSE ALL,
    UNLISTEN *, RESET ALL), one round trip per release: no code here leaves session state on a
    pooled connection (the only advisory lock is transaction-scoped, nothing sets, listens or
    holds a cursor). asyncpg still rolls back a transaction left open."""
    return await asyncpg.create_pool(settings.database_url, timeout=settings.database_timeout,
                                     command_timeout=settings.database_timeout, reset=_keep_session, **options)


async def _keep_session(connection: asyncpg.Connection) -> None:
    pass
