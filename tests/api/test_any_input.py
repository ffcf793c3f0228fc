"""A property: whatever text, numbers and nesting a client sends to the commands, the request is
either refused with a 4xx or published, and every published event is applied by the registry (no
dead letters), storing exactly what was sent."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from model.training.config import TrainingConfig
from services.api.commands import with_num_epochs

# Text as a client can send it: any code point, NUL and unpaired surrogates included.
text = st.text(st.characters(codec=None, categories=None) | st.sampled_from(["\x00", "\ud800", "\udfff"]), max_size=20)
numbers = st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=True, allow_infinity=True)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
# Values near and past the fields' bounds as well as anything at all, so some configs are valid.
config_values = (st.integers(min_value=1, max_value=4) | st.floats(min_value=0.001, max_value=0.5)
                 | st.integers(min_value=-1, max_value=2**64) | st.floats(allow_nan=True, allow_infinity=True)
                 | json_values)
configs = st.dictionaries(st.sampled_from(sorted(set(TrainingConfig.model_fields) - {"dataset_type"})) | text,
                          config_values, max_size=3)


def as_sent(body: dict[str, Any]) -> bytes:
    """What a client writes: NaN, Infinity and lone surrogates spelled out as JSON text."""
    return json.dumps(body, ensure_ascii=True, allow_nan=True).encode()


async def test_every_command_input_is_refused_with_4xx_or_published_and_applied(api, client):
    experiment = await api.supervised_experiment()
    loop = asyncio.get_running_loop()
    answered: list[tuple[str, int]] = []

    async def send(method: str, url: str, body: dict[str, Any]) -> None:
        response = await client.request(method, url, content=as_sent(body), headers={"content-type": "application/json"})
        assert response.is_success or 400 <= response.status_code < 500, (method, url, body, response.text)
        answered.append((url, response.status_code))
        if response.is_success and url == "/api/datasets":
            assert (response.json()["name"], response.json()["description"]) == (body["name"], body["description"])
        if response.is_success and url == "/api/experiments":
            assert response.json()["config"] == with_num_epochs(body["config"])

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(command=st.sampled_from(["dataset", "experiment", "patch", "run"]), name=text, description=text,
           config=configs, kind=st.sampled_from(["supervised", "preference"]) | text)
    def property(command: str, name: str, description: str, config: dict, kind: str) -> None:
        if command == "dataset":
            request = send("POST", "/api/datasets", {"name": name, "kind": kind, "description": description})
        elif command == "experiment":
            request = send("POST", "/api/experiments", {"name": name, "dataset_id": experiment["dataset_id"],
                                                        "description": description, "config": config})
        elif command == "patch":
            request = send("PATCH", f"/api/experiments/{experiment['id']}", {"description": description, "config": config})
        else:
            request = send("POST", f"/api/experiments/{experiment['id']}/runs", {"name": name, "config": config})
        asyncio.run_coroutine_threadsafe(request, loop).result(timeout=60)

    # hypothesis drives synchronous code: it runs in a thread, each request in the test's loop
    await asyncio.to_thread(property)

    assert (await client.get("/api/dead-letters")).json() == []
    assert any(status in (200, 201) for _, status in answered) and any(400 <= status < 500 for _, status in answered)
