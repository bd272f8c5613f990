"""The sync API on MariaDB and memcached, with two gateway instances sharing them: conflicts, many
pushes at once, tombstones, limits, reads right after writes elsewhere, the cached dataset list,
the change event and account deletion."""
from __future__ import annotations

import asyncio
import uuid

import pymysql
import pytest

from devsupport.servers import free_port
from gateway import settings
from plugins.auth.issuer import LocalIssuer
from plugins.sync.api import DatasetChanged
from plugins.sync.routes import NAME
from plugins.sync.settings import SyncSettings
from plugins.sync.store import NAME_MAX


async def push(client, headers, changes, dataset="game"):
    response = await client.patch(f"/v1/datasets/{dataset}/records", headers=headers, json={"changes": changes})
    return response.status, await response.json()


async def pull(client, headers, since=0, dataset="game", **query):
    response = await client.get(f"/v1/datasets/{dataset}/records", headers=headers,
                                params={"since": since, **query})
    return response.status, await response.json()


def change(key, value, sync_count=0):
    return {"key": key, "value": value, "sync_count": sync_count}


async def test_two_devices_change_one_record_one_wins_the_other_merges(instances, device):
    (one, two), (_, headers) = instances, device
    assert (await push(one.client, headers, [change("level", "1")]))[0] == 200
    # both devices last saw sync count 1 and change the record, each through its own instance
    first, second = await asyncio.gather(push(one.client, headers, [change("level", "2a", 1)]),
                                         push(two.client, headers, [change("level", "2b", 1)]))
    assert sorted([first[0], second[0]]) == [200, 409]
    (won, winner), (_, lost) = sorted([first, second], key=lambda outcome: outcome[0])
    (server,) = lost["records"]
    assert lost["status"] == 409 and server["key"] == "level"
    assert server["value"] == winner["records"][0]["value"] and server["sync_count"] == 2
    # the loser merges (here: keeps both) and pushes from the server's sync count
    merged = f"{server['value']}+{'2b' if server['value'] == '2a' else '2a'}"
    status, body = await push(two.client, headers, [change("level", merged, server["sync_count"])])
    assert status == 200 and body["sync_count"] == 3
    status, body = await pull(one.client, headers, since=2)
    assert [(r["key"], r["value"], r["sync_count"]) for r in body["records"]] == [("level", merged, 3)]


async def test_fifty_parallel_pushes_to_a_new_dataset_lose_nothing(instances, device):
    """The first pushes of a new caller race for rows none of them has yet: InnoDB deadlocks some,
    and those are retried, so every push lands and none answers 5xx."""
    (one, two), (_, headers) = instances, device
    outcomes = await asyncio.gather(*(push((one, two)[n % 2].client, headers, [change(f"k{n:02d}", str(n))])
                                      for n in range(50)))
    assert [status for status, _ in outcomes] == [200] * 50
    assert sorted(body["sync_count"] for _, body in outcomes) == list(range(1, 51))
    status, body = await pull(two.client, headers, limit=100)
    assert body["sync_count"] == 50
    assert {r["key"]: r["value"] for r in body["records"]} == {f"k{n:02d}": str(n) for n in range(50)}


async def test_parallel_increments_of_one_record_retrying_on_409_count_every_one(instances, device):
    (one, two), (_, headers) = instances, device
    await push(one.client, headers, [change("counter", "0")], dataset="counts")

    async def increment(client):
        seen = (await pull(client, headers, dataset="counts"))[1]["records"][0]
        while True:
            status, body = await push(client, headers, [change("counter", str(int(seen["value"]) + 1),
                                                               seen["sync_count"])], dataset="counts")
            if status == 200:
                return
            assert status == 409, body
            (seen,) = body["records"]

    await asyncio.gather(*(increment((one, two)[n % 2].client) for n in range(20)))
    records = (await pull(one.client, headers, dataset="counts"))[1]["records"]
    assert [(r["value"], r["sync_count"]) for r in records] == [("20", 21)]


async def test_deletes_appear_as_tombstones(instances, device):
    (one, two), (_, headers) = instances, device
    await push(one.client, headers, [change("a", "1"), change("b", "2")])
    status, body = await push(two.client, headers, [change("a", None, 1)])
    assert status == 200 and body["records"][0]["deleted"] is True
    status, body = await pull(one.client, headers, since=1)
    assert body["records"] == [{"key": "a", "value": None, "sync_count": 2, "deleted": True,
                                "last_modified": body["records"][0]["last_modified"]}]
    listed = await (await one.client.get("/v1/datasets", headers=headers)).json()
    assert [(d["name"], d["records"], d["bytes"], d["sync_count"]) for d in listed["datasets"]] == [("game", 1, 2, 2)]
    # recreating a deleted key starts from the tombstone's sync count
    assert (await push(one.client, headers, [change("a", "again", 0)]))[0] == 409
    assert (await push(one.client, headers, [change("a", "again", 2)]))[0] == 200


async def test_pages_of_changes_in_sync_count_order(instances, device):
    (one, two), (_, headers) = instances, device
    await push(one.client, headers, [change(f"r{n:02d}", "x") for n in range(25)])
    await push(one.client, headers, [change("r00", "y", 1)])  # r00 moves to the end
    seen, cursor = [], None
    while True:
        query = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        status, body = await pull(two.client, headers, **query)
        assert status == 200
        seen += [(r["key"], r["sync_count"]) for r in body["records"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 25 and seen[-1] == ("r00", 2) and len({key for key, _ in seen}) == 25
    assert body["sync_count"] == 2


async def test_a_pull_right_after_a_push_on_the_other_instance_sees_it(instances, device):
    (one, two), (_, headers) = instances, device
    listed = await two.client.get("/v1/datasets", headers=headers)  # cached on the shared memcached
    etag = listed.headers["ETag"]
    assert (await listed.json()) == {"datasets": []}
    assert (await push(one.client, headers, [change("k", "v")]))[0] == 200
    status, body = await pull(two.client, headers)
    assert status == 200 and [(r["key"], r["value"]) for r in body["records"]] == [("k", "v")]
    listed = await two.client.get("/v1/datasets", headers={**headers, "If-None-Match": etag})
    assert listed.status == 200 and listed.headers["ETag"] != etag
    assert [d["name"] for d in (await listed.json())["datasets"]] == ["game"]


async def test_an_unchanged_dataset_list_is_a_304_from_the_cache(instances, device):
    (one, two), (_, headers) = instances, device
    await push(one.client, headers, [change("k", "v")])
    etag = (await one.client.get("/v1/datasets", headers=headers)).headers["ETag"]
    owners = two.services  # the second instance's resource reads count database reads for representations
    resource = owners[next(key for key in owners if key.name == "resources")]._defined["sync-datasets"]
    reads = resource.reads
    for _ in range(5):
        response = await two.client.get("/v1/datasets", headers={**headers, "If-None-Match": etag})
        assert response.status == 304 and response.headers["ETag"] == etag
    assert resource.reads == reads  # every answer came from memcached


@pytest.mark.parametrize("body, field", [
    ({"changes": [change("k" * 9, "v")]}, "changes.0.key"),
    ({"changes": [change("", "v")]}, "changes.0.key"),
    ({"changes": [change("k", "v"), change("k", "w")]}, "changes"),
    ({"changes": []}, "changes"),
    ({"changes": [{"key": "k", "value": "v", "sync_count": -1}]}, "changes.0.sync_count"),
    ({"changes": [{"key": "k", "value": "v", "sync_count": "1"}]}, "changes.0.sync_count"),
    ({"changes": [{"key": "k", "value": "v"}]}, "changes.0.sync_count"),
])
async def test_invalid_pushes_name_the_field(start_instances, device, body, field):
    one, _ = await start_instances(SYNC_MAX_KEY_LENGTH="8")
    response = await one.client.patch("/v1/datasets/game/records", headers=device[1], json=body)
    assert response.status == 422 and response.content_type == "application/problem+json"
    assert field in (await response.json())["errors"]


@pytest.mark.parametrize("name", ["bad name", "x" * 129, "a+b"])
async def test_bad_dataset_names_are_refused(instances, device, name):
    status, body = await push(instances[0].client, device[1], [change("k", "v")], dataset=name)
    assert status == 422 and "name" in body["errors"]


async def test_limits_refuse_cleanly_and_store_nothing(start_instances, device, admin):
    one, two = await start_instances(SYNC_MAX_DATASETS="2", SYNC_MAX_RECORDS="3", SYNC_MAX_DATASET_BYTES="1024")
    identity, headers = device
    for name in ("a", "b"):
        assert (await push(one.client, headers, [change("k", "v")], dataset=name))[0] == 200

    def stored():
        with admin.cursor() as cursor:
            cursor.execute("SELECT name, sync_count, records, bytes FROM sync_datasets WHERE owner = %s ORDER BY name",
                           (identity,))
            datasets = cursor.fetchall()
            cursor.execute("SELECT record_key, value, sync_count FROM sync_records WHERE owner = %s "
                           "ORDER BY dataset, record_key", (identity,))
            return datasets, cursor.fetchall()

    before = stored()
    status, body = await push(two.client, headers, [change("k", "v")], dataset="c")
    assert status == 422 and "2 datasets" in body["errors"]["name"][0]
    status, body = await push(two.client, headers, [change(f"n{n}", "v") for n in range(3)], dataset="a")
    assert status == 422 and "4 records" in body["errors"]["changes"][0]
    status, body = await push(one.client, headers, [change("big", "x" * 1100)], dataset="a")
    assert status == 422 and "bytes" in body["errors"]["changes"][0]
    assert stored() == before
    # a deletion frees room for a record in the same push
    assert (await push(one.client, headers, [change("n1", "v"), change("n2", "v")], dataset="a"))[0] == 200
    assert (await push(one.client, headers, [change("n3", "v")], dataset="a"))[0] == 422
    assert (await push(one.client, headers, [change("k", None, 1), change("n3", "v")], dataset="a"))[0] == 200


async def test_a_change_event_after_every_committed_change(instances, device, admin):
    (one, two), (identity, headers) = instances, device
    events: list[DatasetChanged] = []

    async def hear(change_: DatasetChanged) -> None:
        events.append(change_)

    async def broken(change_: DatasetChanged) -> None:
        raise RuntimeError("a subscriber's bug")

    one.sync.on_change(broken)
    one.sync.on_change(hear)
    assert (await push(one.client, headers, [change("a", "1"), change("b", "2")]))[0] == 200
    assert (await push(one.client, headers, [change("a", "x", 0)]))[0] == 409  # nothing committed, no event
    assert (await one.client.delete("/v1/datasets/game", headers=headers)).status == 204
    assert events == [DatasetChanged(identity, "game", 1, ("a", "b")),
                      DatasetChanged(identity, "game", 0, (), deleted=True)]
    assert (await pull(two.client, headers))[0] == 404


async def test_account_deletion_removes_the_datasets(instances, device, admin):
    (one, two), (identity, headers) = instances, device
    assert (await one.client.get("/v1/me", headers=headers)).status == 200
    await push(one.client, headers, [change("a", "1")], dataset="one")
    await push(two.client, headers, [change("b", "2")], dataset="two")
    assert len((await (await two.client.get("/v1/datasets", headers=headers)).json())["datasets"]) == 2
    assert (await one.client.delete("/v1/me", headers=headers)).status == 204
    with admin.cursor() as cursor:
        for table, column in (("sync_datasets", "owner"), ("sync_records", "owner"), ("sync_owners", "id")):
            cursor.execute(f"SELECT COUNT(*) AS n FROM {table} WHERE {column} = %s", (identity,))
            assert cursor.fetchone()["n"] == 0, table
    assert (await (await two.client.get("/v1/datasets", headers=headers)).json()) == {"datasets": []}


@pytest.mark.parametrize("deadlocks, status", [(2, 200), (5, 503)])
async def test_deadlocked_pushes_are_retried_a_bounded_number_of_times(start_instances, device, deadlocks, status):
    """InnoDB's answer to a deadlock (1213) rolls the transaction back: the push runs again, at most
    SYNC_PUSH_ATTEMPTS times in all, and then answers 503 with Retry-After, having stored nothing."""
    one, two = await start_instances(SYNC_PUSH_ATTEMPTS="5")
    store, real, attempts = one.sync.store, one.sync.store._push, []

    async def deadlocking(tx, *args):
        attempts.append(1)
        if len(attempts) <= deadlocks:
            await tx.execute("SELECT 1")
            raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
        return await real(tx, *args)

    store._push = deadlocking
    response = await one.client.patch("/v1/datasets/game/records", headers=device[1],
                                      json={"changes": [change("k", "v")]})
    assert response.status == status and len(attempts) == min(deadlocks + 1, 5)
    if status == 503:
        assert response.headers["Retry-After"] == "1"
        assert (await pull(two.client, device[1]))[0] == 404


def test_default_limits_are_cognito_syncs():
    """Cognito Sync API Reference, "Welcome" (https://docs.aws.amazon.com/cognitosync/latest/APIReference/Welcome.html):
    a dataset stores up to 1 MB of key-value pairs, up to 20 datasets per identity; "Dataset"
    (https://docs.aws.amazon.com/cognitosync/latest/APIReference/API_Dataset.html): names of 1 to 128
    of `[a-zA-Z0-9_.:-]`; "RecordPatch"
    (https://docs.aws.amazon.com/cognitosync/latest/APIReference/API_RecordPatch.html): keys of 1 to
    1024 characters."""
    defaults = settings.load(SyncSettings, {})
    assert (defaults.max_datasets, defaults.max_dataset_bytes, defaults.max_key_length) == (20, 1024 * 1024, 1024)
    assert defaults.max_records == 1024
    assert NAME_MAX == 128 and NAME("a.Z_0:-" * 18 + "ab") and len("a.Z_0:-" * 18 + "ab") == 128


async def test_a_change_from_a_count_the_server_never_had_is_a_conflict(instances, device):
    """A device claiming to have seen sync count 1 of a key the server never had (found by
    schemathesis: it was a 500): 409, the server's side being "no such record" at count 0."""
    (one, _), (_, headers) = instances, device
    await push(one.client, headers, [change("a", "1")])
    status, body = await push(one.client, headers, [change("a", "2", 1), change("never", "x", 1)])
    assert status == 409
    assert body["records"] == [{"key": "never", "value": None, "sync_count": 0, "last_modified": None,
                                "deleted": True}]
    assert (await push(one.client, headers, [change("a", "2", 1), change("never", "x", 0)]))[0] == 200


async def test_the_embedded_defaults_sync_too(make_client, base_env):
    """`make run`'s SQLite and in-process cache: the same API, conflicts and 304s included."""
    client = await make_client({"GATEWAY_PLUGINS": "health,auth,data,profiles,sync"})
    issuer = LocalIssuer(f"{base_env['GATEWAY_DATA_DIR']}/dev-signing-key.pem")
    headers = {"Authorization": f"Bearer {issuer.mint_identity(f'local:{uuid.uuid4()}')}"}
    assert (await push(client, headers, [change("k", "v")]))[0] == 200
    status, body = await push(client, headers, [change("k", "w")])
    assert status == 409 and body["records"][0]["value"] == "v"
    assert (await push(client, headers, [change("k", "w", 1), change("j", None)]))[0] == 200
    status, body = await pull(client, headers, since=1)
    assert sorted((r["key"], r["value"], r["deleted"]) for r in body["records"]) == [("j", None, True), ("k", "w", False)]
    listed = await client.get("/v1/datasets", headers=headers)
    again = await client.get("/v1/datasets", headers={**headers, "If-None-Match": listed.headers["ETag"]})
    assert again.status == 304


async def test_sync_serves_while_memcached_is_down(start_instances, device):
    """The cache is an optimisation: with no memcached answering, pushes, pulls and the dataset
    list (and its 304) still work, from the database."""
    one, two = await start_instances(CACHE_URL=f"memcached://127.0.0.1:{free_port()}")
    headers = device[1]
    assert (await push(one.client, headers, [change("k", "v")]))[0] == 200
    listed = await two.client.get("/v1/datasets", headers=headers)
    assert listed.status == 200 and [d["name"] for d in (await listed.json())["datasets"]] == ["game"]
    again = await one.client.get("/v1/datasets", headers={**headers, "If-None-Match": listed.headers["ETag"]})
    assert again.status == 304
    assert (await pull(two.client, headers))[1]["records"][0]["value"] == "v"
