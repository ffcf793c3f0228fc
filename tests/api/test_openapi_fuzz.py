"""schemathesis against the app's own /openapi.json: whatever it generates for each operation, the
API served by uvicorn on real NATS and PostgreSQL (projector running) answers without a 5xx."""
from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from services.cli import serve_api
from services.registry.projector import run_projector
from services.settings import Settings
from serving import free_port, wait_until_serving

# Per operation and mode; 46 operations × 2 modes stay well under a minute.
EXAMPLES_PER_OPERATION = 12


async def serve(settings: Settings, port: int, stop: asyncio.Event) -> None:
    await asyncio.gather(serve_api(settings, stop, "127.0.0.1", port), run_projector(settings, stop))


@pytest.fixture
def served(settings: Settings) -> Iterator[str]:
    port = free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(settings, port, stop),), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, thread)
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()


def test_no_generated_request_gets_a_server_error(served: str) -> None:
    # A dataset, so that operations on it have something to act on besides 404s.
    httpx.post(f"{served}/api/datasets", json={"name": "fuzzed", "kind": "supervised"}).raise_for_status()
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    session = requests.Session()
    server_errors: list[str] = []
    statuses: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30

    # Valid requests by the schema, then invalid ones (each must be refused with a 4xx, not a 5xx).
    for operation, mode in itertools.product(operations, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
        @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def answered_without_5xx(case) -> None:
            response = case.call(base_url=served, session=session, timeout=30)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                server_errors.append(f"{response.status_code} {case.method} {case.formatted_path} "
                                     f"query={case.query} body={case.body!r:.200}: {response.text[:300]}")

        try:
            answered_without_5xx()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # an operation without inputs has no invalid request

    assert server_errors == []
    # It did reach the routes: besides refusals, some requests succeeded.
    assert len(statuses) > 5 * len(operations)
    assert sum(200 <= status < 300 for status in statuses) > len(operations)
