"""Uploads past the configured size limit are refused while being read."""
from __future__ import annotations

from dataclasses import replace

import pytest

LIMIT = 64 * 1024


@pytest.fixture
def settings(settings):
    return replace(settings, max_upload_bytes=LIMIT)


async def test_an_upload_over_the_limit_is_413_and_stores_nothing(api, client, stored, tone):
    dataset = await api.dataset()
    small, large = tone("WAV", seconds=1.0), tone("WAV", seconds=3.0)  # 16-bit mono: 32 KB and 96 KB
    assert len(small) < LIMIT < len(large)
    before = await stored()

    response = await api.upload_clip(dataset["id"], large)

    assert response.status_code == 413
    assert response.json() == {"detail": f"request body is larger than the upload limit of {LIMIT} bytes"}
    assert await stored() == before
    assert (await api.upload_clip(dataset["id"], small)).status_code == 201


async def test_a_streamed_upload_without_a_length_is_cut_off_at_the_limit(api, client, stored, tone):
    dataset = await api.dataset()
    request = client.build_request(
        "POST", f"/api/datasets/{dataset['id']}/clips", data={"prompt": "p"}, files={"file": ("a.wav", tone(seconds=3.0))}
    )
    body = request.read()
    sent = 0

    async def chunks():
        nonlocal sent
        for start in range(0, len(body), 8 * 1024):
            sent += 8 * 1024
            yield body[start:start + 8 * 1024]

    before = await stored()
    response = await client.post(
        request.url, content=chunks(), headers={"content-type": request.headers["content-type"]}
    )

    assert response.status_code == 413
    assert sent < len(body)  # refused while reading, not after buffering the whole body
    assert await stored() == before
