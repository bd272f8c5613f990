"""Media fixtures: apps on the embedded SQLite with the local store or with the moto server's S3,
callers with tokens from the local issuer, and a bucket per test."""
from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest

from devsupport.servers import free_port
from gateway.app import build
from plugins.auth.issuer import LocalIssuer
from tests.media.helpers import App

REGION = "us-east-1"


@pytest.fixture
def leftovers(env, request):
    """`leftovers()`: every object and every multipart upload the test's store (its `env`) holds,
    the local store's own files (metadata, its secret) aside."""
    if "MEDIA_BUCKET" in env:
        s3, bucket = request.getfixturevalue("s3"), env["MEDIA_BUCKET"]
        return lambda: (sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])),
                        [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])])
    root = Path(env["GATEWAY_DATA_DIR"]) / "media"
    return lambda: (sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix != ".meta"
                           and not p.name.startswith(".") and ".multipart" not in p.parts),
                    sorted(p.name for p in (root / ".multipart").glob("*")))


@pytest.fixture
def media_env(base_env) -> dict:
    return {**base_env, "GATEWAY_PLUGINS": "health,auth,data,profiles,media"}


@pytest.fixture
def s3(moto_endpoint):
    return boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture
def bucket(s3) -> str:
    name = f"media-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_env(media_env, moto_endpoint, bucket) -> dict:
    return {**media_env, "MEDIA_BUCKET": bucket, "AWS_ENDPOINT_URL": moto_endpoint, "AWS_REGION": REGION}


@pytest.fixture
def start_app(aiohttp_client, media_env):
    """`await start_app(env)`: the app built from env (the local store on SQLite by default), served
    on the GATEWAY_PORT it is configured with, so that the local store's default public URL is its own."""

    async def start(env: dict | None = None) -> App:
        port = free_port()
        built = build({"GATEWAY_PORT": str(port), **(env or media_env)})
        return App(await aiohttp_client(built.app, server_kwargs={"port": port}), built.registry.services)

    return start


@pytest.fixture
def caller(base_env):
    """`caller()`: the Authorization header of a fresh subject, and the subject."""
    issuer = LocalIssuer(f"{base_env['GATEWAY_DATA_DIR']}/dev-signing-key.pem")

    def make() -> tuple[dict, str]:
        sub = f"user-{uuid.uuid4().hex[:12]}"
        return {"Authorization": f"Bearer {issuer.mint(sub)}"}, sub

    return make
