"""Responses that carry stored bytes rather than JSON."""
from __future__ import annotations

from urllib.parse import quote

from fastapi import Response


def download(data: bytes, media_type: str, filename: str, disposition: str = "attachment") -> Response:
    # RFC 6266: a plain ASCII fallback plus the exact UTF-8 name.
    fallback = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    header = f"{disposition}; filename=\"{fallback}\"; filename*=utf-8''{quote(filename)}"
    return Response(content=data, media_type=media_type,
                    headers={"Content-Disposition": header, "X-Content-Type-Options": "nosniff"})
