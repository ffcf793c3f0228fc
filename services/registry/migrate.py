"""Schema migrations: every migrations/NNN_*.sql applied once, in name order, recorded in
`schema_migrations`. Every service calls `migrate` at start; an advisory lock makes concurrent
starts wait for each other instead of applying a file twice."""
from __future__ import annotations

from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x43_61_64_65_6E_7A_61_01  # "Cadenza" + 1: any fixed 64-bit number of our own


async def migrate(db: asyncpg.Connection | asyncpg.Pool) -> list[str]:
    """Apply the migrations this database lacks; return their file names."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as connection:
            return await _migrate(connection)
    return await _migrate(db)


async def _migrate(connection: asyncpg.Connection) -> list[str]:
    applied_now = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {row["name"] for row in await connection.fetch("SELECT name FROM schema_migrations")}
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if path.name in applied:
                continue
            await connection.execute(path.read_text())
            await connection.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            applied_now.append(path.name)
    return applied_now
