"""Answering HTTP `Range` requests (RFC 9110 §14) on bytes held in memory: one range per request,
which is what audio players ask for when they seek."""
from __future__ import annotations

import re

from fastapi import Response

SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def ranged(data: bytes, media_type: str, range_header: str | None) -> Response:
    """200 with everything when no range is asked (or one this does not read: several ranges, other
    units), 206 with the range asked, 416 when it lies past the end."""
    size = len(data)
    # Stored bytes are whatever a client uploaded: the browser must take the media type as given and
    # never sniff, say, HTML in them.
    headers = {"Accept-Ranges": "bytes", "X-Content-Type-Options": "nosniff"}
    found = SINGLE_RANGE.match(range_header.strip()) if range_header else None
    if found is None or found.groups() == ("", ""):
        return Response(data, media_type=media_type, headers=headers)
    first, last = found.groups()
    if first == "":  # a suffix: the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end or (first == "" and int(last) == 0):
        return Response(status_code=416, headers=headers | {"Content-Range": f"bytes */{size}"})
    return Response(data[start:end + 1], status_code=206, media_type=media_type,
                    headers=headers | {"Content-Range": f"bytes {start}-{end}/{size}"})
