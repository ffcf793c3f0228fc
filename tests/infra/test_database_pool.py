"""The services' connection pool."""
from __future__ import annotations

from services.database import create_pool
from services.settings import Settings


async def test_a_released_connection_goes_back_without_a_reset_query(settings: Settings):
    pool = await create_pool(settings, min_size=1, max_size=1)
    try:
        queries: list[str] = []
        async with pool.acquire() as connection:
            connection.add_query_logger(lambda record: queries.append(record.query))
            await connection.fetchval("SELECT 1")
        async with pool.acquire() as connection:  # the same connection: the pool holds one
            await connection.fetchval("SELECT 2")
    finally:
        await pool.close()
    assert queries == ["SELECT 1", "SELECT 2"]
