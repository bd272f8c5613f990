"""The representation cache of a resource: each row rendered once, on a cache miss, into bytes
stored as `ETag\\nbody` per view, so that a hit sends those bytes as they are. After a write
commits, `written()` drops every view of the row and, with a replica, remembers for a while that
the writer's own lists must read the writer (read-your-writes)."""
from __future__ import annotations

import json
import zlib
from typing import Awaitable, Callable

from marshmallow import Schema, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP

from gateway.routing import PLAIN
from plugins.data.api import Renderer, Row
from plugins.data.cache import Cache, cache_key

DEFAULT = "default"


def plain_fields(schema: Schema, rendered) -> dict[str, type] | None:
    """The fields of a view (those no renderer makes) whose dump is the row's value under the same
    name, text or an integer as it is; None when marshmallow must dump the view (any other field,
    a hook, a default, a rename). marshmallow's dump of a profile is ~79k instructions, the copy ~10k."""
    if any(schema._hooks.get(hook) for hook in (PRE_DUMP, POST_DUMP)):
        return None
    plain = {}
    for name, field in schema.dump_fields.items():
        if name in rendered:
            continue
        kind = PLAIN.get(type(field))
        if (kind is None or field.attribute not in (None, name) or field.data_key not in (None, name)
                or field.dump_default is not missing or getattr(field, "as_string", False)):
            return None
        plain[name] = kind
    return plain


def copied(plain: dict[str, type], row: Row) -> dict | None:
    """The view as marshmallow would dump it, if every value already has its field's type."""
    data = {}
    for name, kind in plain.items():
        if name in row:
            value = row[name]
            if value is not None and type(value) is not kind:
                return None
            data[name] = value
    return data


def etag_of(row: Row) -> str:
    # The version alone would repeat after a delete and re-create; created_at tells those apart.
    return f'"{row["version"]}.{zlib.crc32(row["created_at"].encode()):08x}"'


class Representations:
    def __init__(self, name: str, cache: Cache, views: dict[str, Schema], *, replica: bool,
                 read_max_lag: float) -> None:
        self.name = name
        self.cache = cache
        self.views = views
        self.replica = replica
        self.read_max_lag = read_max_lag
        self.renderers: dict[str, Renderer] = {}
        self._plain: dict[str, dict[str, type] | None] = {}  # per view, made on first use (renderers are known by then)

    def render_with(self, field: str, renderer: Renderer) -> None:
        self.renderers[field] = renderer
        self._plain.clear()

    def keys(self, key: str, owner: str | None = None) -> list[bytes]:
        keys = [cache_key(self.name, view, key) for view in self.views]
        if owner is not None:
            keys += [cache_key(self.name, view, key, owner) for view in self.views]
        return keys

    async def data(self, row: Row, view: str = DEFAULT) -> dict:
        """The representation of a row as a dict (for answers that embed it)."""
        if view not in self._plain:
            self._plain[view] = plain_fields(self.views[view], self.renderers)
        plain = self._plain[view]
        data = copied(plain, row) if plain is not None else None
        if data is None:
            data = self.views[view].dump(row)
        for field, renderer in self.renderers.items():
            if field in self.views[view].fields:
                data[field] = await renderer(row)
        return data

    async def render(self, row: Row, view: str = DEFAULT) -> bytes:
        body = json.dumps(await self.data(row, view), ensure_ascii=False, separators=(",", ":")).encode()
        return etag_of(row).encode() + b"\n" + body

    def read(self, key: str, owner: str | None, view: str,
             load: Callable[[str, str | None, str], Awaitable[bytes | None]]) -> Awaitable[bytes | None]:
        """The stored representation, from the cache or from `load(key, owner, view)`. Not a
        coroutine itself: it hands back the cache's, one frame fewer on every read."""
        ck = cache_key(self.name, view, key) if owner is None else cache_key(self.name, view, key, owner)
        return self.cache.fetch(ck, load, key, owner, view)

    async def written(self, key: str, owner: str | None = None) -> None:
        await self.cache.invalidate(*self.keys(key, owner))
        if self.replica and self.read_max_lag:
            await self.cache.mark(cache_key(self.name, "wrote", owner or key), round(self.read_max_lag))

    async def replica_ok(self, owner: str) -> bool:
        """Whether the owner's lists may come from the replica (they have not written lately)."""
        return self.replica and not await self.cache.marked(cache_key(self.name, "wrote", owner))
