"""Account deletion: the ACCOUNTS service. `delete(subject)` removes everything a subject has in
every plugin, durably and idempotently:

1. a row in `account_deletions` is written first (status `pending`, with the subject), or the
   pending one of an earlier attempt is taken up again;
2. every hook runs (plugins' own work, such as a store's objects), then every resource defined
   with an `owner` column loses that owner's rows, each row's cached views with it: a third-party
   plugin's table takes part without a line of code;
3. the row is marked `done` and the subject cleared from it: what stays is the audit record, the
   subject's SHA-256, the times and the counts per kind of thing removed.

Every step may run again without harm, so when one fails (or the process dies) the next
`DELETE /v1/me` of that subject, or `python -m gateway accounts-sweep`, finishes the deletion.

The data plugin owns this because it is the one plugin every stateful plugin already requires and
the only one that knows every owned table (profiles would tie deletion to one feature, and a plugin
of its own would add a required dependency to every plugin that stores data). The route that asks
for it is the profiles plugin's `DELETE /v1/me`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
from typing import Mapping

from gateway.problems import Problem
from plugins.data.api import AccountHook, Database, Row
from plugins.data.repository import Repository
from plugins.data.resources import Resource, Resources

log = logging.getLogger("gateway.data.accounts")
BATCH = 500


class DeletionIncomplete(Problem):
    def __init__(self) -> None:
        super().__init__(503, "Service Unavailable", "The deletion is recorded and partly done; it finishes when this "
                         "request is retried, or by itself shortly.", headers={"Retry-After": "5"})


def subject_hash(subject: str) -> str:
    return hashlib.sha256(subject.encode()).hexdigest()


async def erase(resource: Resource, owner: str) -> Mapping[str, int]:
    """Every row of `owner` in an owned resource, row by row so that each one's cache entries go too."""
    repository = resource.repository
    removed = 0
    while rows := await repository.find_where({repository.owner: owner}, limit=BATCH):
        for row in rows:
            removed += await repository.delete_where({repository.key: row[repository.key], repository.owner: owner})
            await resource.written(row[repository.key], owner)
    return {resource.name: removed}


class Accounts:
    def __init__(self, database: Database, resources: Resources) -> None:
        self.resources = resources
        self.records = Repository(database, "account_deletions")
        self.hooks: list[AccountHook] = []

    def on_delete(self, hook: AccountHook) -> None:
        self.hooks.append(hook)

    async def delete(self, subject: str) -> dict[str, int]:
        """Everything of `subject`, gone; the counts of what went. Raises DeletionIncomplete (503)
        when a step fails: the pending record makes the next call (or the sweep) finish it."""
        record = await self._record(subject)
        counts: dict[str, int] = json.loads(record["counts"])
        steps = [*self.hooks, *(lambda owner, r=r: erase(r, owner) for r in self.resources.owned())]
        try:
            for step in steps:
                for what, removed in (await step(subject)).items():
                    counts[what] = counts.get(what, 0) + removed
                await self.records.update_where({"id": record["id"]}, {"counts": json.dumps(counts, sort_keys=True)})
        except Exception as exc:
            log.warning("account deletion %s stopped, left pending: %r", record["id"], exc)
            raise DeletionIncomplete() from exc
        await self.records.update_where({"id": record["id"]}, {"status": "done", "subject": None})
        return counts

    async def _record(self, subject: str) -> Row:
        digest = subject_hash(subject)
        pending = await self.records.find_where({"subject_hash": digest, "status": "pending"}, limit=1)
        if pending:
            return pending[0]
        return await self.records.insert({"id": secrets.token_urlsafe(16), "subject_hash": digest, "subject": subject,
                                          "status": "pending", "counts": "{}"})

    async def sweep(self) -> tuple[int, int]:
        """Finishes every pending deletion: (how many finished, how many are still pending)."""
        finished = left = 0
        for record in await self.records.find_where({"status": "pending"}):
            try:
                await self.delete(record["subject"])
                finished += 1
            except DeletionIncomplete:
                left += 1
        return finished, left
