"""The sync plugin's public API, the only module of it other plugins import: the SYNC service, whose
one extension point is an event after every committed change to a caller's datasets (a push, a
dataset deleted, an account's datasets removed), for example for a push notifier:

    sync = ctx.require(SYNC)

    async def notify(change: DatasetChanged) -> None:
        ...  # tell the owner's other devices that `change.dataset` moved to `change.sync_count`

    sync.on_change(notify)

Hooks run after the commit, in registration order; one that raises is logged and does not fail the
request or the other hooks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

from gateway.plugin import ServiceKey


@dataclass(frozen=True)
class DatasetChanged:
    owner: str  # the caller's id (Principal.sub)
    dataset: str
    sync_count: int  # the dataset's sync count after the change (0 once deleted)
    keys: tuple[str, ...]  # the record keys changed; empty when the whole dataset went
    deleted: bool = False  # the dataset itself was deleted


ChangeHook = Callable[[DatasetChanged], Awaitable[None]]


class Sync(Protocol):
    def on_change(self, hook: ChangeHook) -> None: ...


SYNC: ServiceKey[Sync] = ServiceKey("sync", Sync)
