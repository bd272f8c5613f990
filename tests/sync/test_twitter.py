"""Done-when of the sync work, in the tests' terms: a Twitter-only user gets an identity from the
identity pool (moto's Cognito Identity), calls /v1/me with the pool's OpenID token, and syncs a
dataset between two devices, each on its own gateway instance, resolving a conflict."""
from __future__ import annotations

from tests.auth.helpers import bearer, sign
from tests.auth.test_identity import identity_claims, identity_jwks, identity_key, identity_pool  # noqa: F401
from tests.sync.test_sync import change, pull, push


async def test_a_twitter_only_user_syncs_two_devices(start_instances, identity_pool, identity_jwks, identity_key):
    cognito, pool = identity_pool
    # the phone signs in with Twitter, then asks the identity pool for its identity and a token
    logins = {"api.twitter.com": "twitter-access-token;twitter-access-secret"}
    identity_id = cognito.get_id(IdentityPoolId=pool, Logins=logins)["IdentityId"]
    assert cognito.get_open_id_token(IdentityId=identity_id, Logins=logins)["IdentityId"] == identity_id
    # moto's token is a random string, not a JWT: the same claims, signed by the test issuer's key
    token = sign(identity_key, identity_claims(sub=identity_id, aud=pool,
                                               amr=["authenticated", "api.twitter.com", "api.twitter.com:42"]),
                 kid="ik1")
    phone, tablet = await start_instances(AUTH_IDENTITY_POOL_ID=pool, AUTH_IDENTITY_JWKS_URL=identity_jwks.url)
    headers = bearer(token)

    me = await phone.client.get("/v1/me", headers=headers)
    assert me.status == 200 and (await me.json())["id"] == identity_id

    # both devices start from an empty dataset; the phone pushes first, the tablet (offline) later
    assert (await push(phone.client, headers, [change("theme", "dark")], dataset="settings"))[0] == 200
    status, conflict = await push(tablet.client, headers, [change("theme", "light"), change("font", "large")],
                                  dataset="settings")
    assert status == 409 and [(r["key"], r["value"]) for r in conflict["records"]] == [("theme", "dark")]
    # nothing of the tablet's push was stored, the font included
    assert [r["key"] for r in (await pull(phone.client, headers, dataset="settings"))[1]["records"]] == ["theme"]
    # the tablet merges (its own theme wins) and pushes from the server's sync counts
    (theirs,) = conflict["records"]
    status, pushed = await push(tablet.client, headers, [change("theme", "light", theirs["sync_count"]),
                                                         change("font", "large")], dataset="settings")
    assert status == 200 and pushed["sync_count"] == 2
    status, changes = await pull(phone.client, headers, since=1, dataset="settings")
    assert {r["key"]: r["value"] for r in changes["records"]} == {"theme": "light", "font": "large"}
    assert changes["sync_count"] == 2 and changes["next_cursor"] is None
