"""Helpers for the media tests: the app under test and the phone's side of an upload."""
from __future__ import annotations

from dataclasses import dataclass

import aiohttp

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
