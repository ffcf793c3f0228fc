"""Keyset pages of the list endpoints. A page starts after the item its cursor names (by the
item's sort key and id, never by an offset, so items added meanwhile shift nothing). A query reads
one item more than the page holds, so the endpoint knows whether another page follows and names
it in an RFC 8288 `Link: <…>; rel="next"` header, absent on the last page. The body stays a plain
JSON list."""
from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

import asyncpg
from fastapi import Request, Response

from services.api.errors import invalid

Item = TypeVar("Item")

# For the routes' `responses`: the header shows in the OpenAPI document.
NEXT_PAGE_HEADER: dict[int | str, dict[str, Any]] = {200: {"headers": {"Link": {
    "description": 'The next page, `<URL>; rel="next"`, when there may be more; absent on the last page',
    "schema": {"type": "string"},
}}}}


async def page_end(pool: asyncpg.Pool, sql: str, kind: str, after: str | None, *args: Any) -> tuple[Any, str | None]:
    """The sort key and id of the item `after` names, which the page after it starts behind, read
    by `sql` (`after` is its $1); (None, None) without `after`. A 422 on `after` when it names none."""
    if after is None:
        return None, None
    row = await pool.fetchrow(sql, after, *args)
    if row is None:
        raise invalid(("query", "after"), f"names no {kind} of this list: pass the `id` of the last {kind} of the "
                                          "page before, as the `Link` header of that page does")
    return row[0], row[1]


def after_id(item: Any) -> dict[str, Any]:
    return {"after": item.id}


def page(request: Request, response: Response, items: Sequence[Item], limit: int,
         cursor: Callable[[Item], dict[str, Any]] = after_id) -> list[Item]:
    """The first `limit` of `items` (read `limit + 1` of them). When there were more, `Link` gets
    the request's URL with `limit` and the `cursor` query parameters of the page's last item: its
    filters carry over to the next page."""
    if len(items) > limit:
        response.headers["Link"] = next_link(request, cursor(items[limit - 1]), limit)
    return list(items[:limit])


def next_link(request: Request, cursor: dict[str, Any], limit: int) -> str:
    """The `Link` header naming the page after the one `cursor` ends: the request's URL with
    `limit` and the `cursor` query parameters."""
    url = request.url.include_query_params(**cursor, limit=limit)
    # A relative reference: still right behind a proxy that rewrote the host or the scheme.
    return f'<{url.path}?{url.query}>; rel="next"'
