"""Helpers for the media tests: the app under test and the phone's side of an upload."""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp

from gateway.app import build

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4


@dataclass
class App:
    client: object
    services: dict

    async def create(self, auth: dict, purpose: str = "avatar", content_type: str = "image/jpeg",
                     size: int = len(JPEG)) -> dict:
        response = await self.client.post("/v1/media", json={"purpose": purpose, "content_type": content_type,
                                                              "size": size}, headers=auth)
        assert response.status == 201, await response.text()
        return await response.json()

    async def complete(self, auth: dict, media_id: str):
        return await self.client.post(f"/v1/media/{media_id}/complete", headers=auth)

    async def ready(self, auth: dict, purpose: str = "avatar", data: bytes = JPEG) -> dict:
        """A media record created, uploaded and completed, as a phone does it."""
        created = await self.create(auth, purpose, size=len(data))
        assert (await upload(created["upload"], data)).status == 204
        completed = await self.complete(auth, created["media"]["id"])
        assert completed.status == 200, await completed.text()
        return await completed.json()


async def cleanup(env: dict) -> None:
    """`python -m gateway media-cleanup`, as the command runs it."""
    built = build(env)
    command = next(c for c in built.registry.commands if c.name == "media-cleanup")
    assert await command.run(built.app, SimpleNamespace()) == 0


async def upload(upload: dict, data: bytes, fields: dict | None = None, content_type: str = "image/jpeg"):
    """POST the form the way a phone does: the given fields in order, then the file, last."""
    form = aiohttp.FormData()
    for name, value in (upload["fields"] if fields is None else fields).items():
        form.add_field(name, value)
    form.add_field("file", data, filename="photo.jpg", content_type=content_type)
    async with aiohttp.ClientSession() as session:
        async with session.request(upload["method"], upload["url"], data=form) as response:
            await response.read()
            return response


async def download(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.status, await response.read(), response.headers.get("Content-Type", "")


async def download_headers(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            await response.read()
            return response.status, dict(response.headers)


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    """An ISO base media file's leading `ftyp` box, then the start of the next box."""
    brands = major + b"\0\0\0\0" + b"".join(compatible)
    return (8 + len(brands)).to_bytes(4, "big") + b"ftyp" + brands + b"\0\0\0\x08free" + bytes(64)


# The leading bytes of a file of each accepted type (padded: none is shorter than a ranged read).
SAMPLES = {
    "image/jpeg": JPEG,
    "image/png": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(80),
    "image/webp": b"RIFF\x24\0\0\0WEBPVP8 " + bytes(80),
    "image/heic": ftyp(b"heic", b"mif1", b"heic"),
    "image/heif": ftyp(b"mif1", b"mif1"),
    "video/mp4": ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"),
    "application/pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(80),
}
HTML = b"<!doctype html><script>alert(document.cookie)</script>" + bytes(40)


async def put_part(url: str, data: bytes) -> tuple[int, str | None]:
    """PUT one part of a resumable upload, as a phone does: (status, the ETag it answered)."""
    async with aiohttp.ClientSession() as session:
        async with session.put(url, data=data) as response:
            await response.read()
            return response.status, response.headers.get("ETag")
