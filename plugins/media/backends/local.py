"""The embedded store: objects under `${GATEWAY_DATA_DIR}/media`, served by the gateway itself.

It behaves like the S3 bucket behind CloudFront so that a phone's code is the same for both:
`POST /local-media` takes the presigned form (fields first, the file last; uploads land under
`incoming/`, never served), `PUT /local-media/parts/...` the parts of a resumable upload (kept under
`.multipart/` until complete), and `GET /local-media/{key}` serves published objects: `avatars/` to
anyone (like the CDN's public path), everything else only with an unexpired HMAC signature. Unlike
moto it enforces the whole policy: the signature, the expiry, the exact key, the content type and
the exact size (of a part too). Keys must match `backends.STORED_KEY` (no dots but the extension's,
no empty segments), so no key reaches outside the directory; a refused upload writes nothing. It is
a development store: files are written from the event loop, and bodies are limited by
GATEWAY_MAX_BODY_BYTES like any other (parts by MEDIA_MULTIPART_PART_BYTES).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.files import create_once
from gateway.problems import Problem
from plugins.media.backends.store import KEY, PREFIXES, STORED_KEY, Changed, Head, Part, owner_prefixes
from plugins.media.content import SNIFF_BYTES

BASE = "/local-media"
PUBLIC_PREFIX = PREFIXES["avatar"] + "/"
UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{22}")
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 16


def etag(status: os.stat_result) -> str:
    """Which upload a file is: every upload is a new file linked into place."""
    return f"{status.st_ino}-{status.st_mtime_ns}-{status.st_size}"


def denied(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail)


def load_or_create_secret(path: Path) -> bytes:
    """The HMAC key, created on first start; workers racing to create it all end up with the one
    that was linked into place first."""
    if not path.exists():
        create_once(path, secrets.token_bytes(32))
    return path.read_bytes()


async def field_value(part: BodyPartReader) -> str:
    value = bytearray()
    while chunk := await part.read_chunk(MAX_FIELD_BYTES):
        value += chunk
        if len(value) > MAX_FIELD_BYTES:
            raise Problem(400, "Bad Request", f"The form field {part.name!r} is too long.")
    return value.decode(errors="replace")


class LocalStore:
    def __init__(self, root: str, public_url: str) -> None:
        self.root = Path(root)
        self.base = public_url.rstrip("/") + BASE  # configured: a request's Host header never chooses it
        self._secret = b""

    async def context(self, app):
        self._secret = await asyncio.to_thread(load_or_create_secret, self.root / ".secret")
        yield

    def _sign(self, message: str) -> str:
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()

    def _signed(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self._sign(message).encode(), signature.encode())

    def _path(self, key: str) -> Path:
        if not STORED_KEY.fullmatch(key):
            raise denied("No such key.")
        return self.root / key

    # The store's operations (see plugins.media.backends).

    async def presign_upload(self, key: str, content_type: str, size: int, expires: int) -> tuple[str, dict]:
        fields = {"key": key, "Content-Type": content_type}
        policy = {"expiration": expires, "fields": fields, "content-length-range": [size, size]}
        encoded = base64.b64encode(json.dumps(policy).encode()).decode()
        return self.base, {**fields, "policy": encoded, "signature": self._sign(encoded)}

    async def head(self, key: str) -> Head | None:
        path = self._path(key)
        try:
            meta = json.loads(await asyncio.to_thread(Path(f"{path}.meta").read_text))
            status = path.stat()
        except FileNotFoundError:
            return None
        return Head(status.st_size, meta["content_type"], etag(status))

    def _unchanged(self, key: str, expected: str) -> Path:
        path = self._path(key)
        try:
            if etag(path.stat()) == expected:
                return path
        except FileNotFoundError:
            pass
        raise Changed(key)

    async def read_start(self, key: str, etag: str) -> bytes:
        def read() -> bytes:
            with self._unchanged(key, etag).open("rb") as file:
                return file.read(SNIFF_BYTES)

        return await asyncio.to_thread(read)

    async def publish(self, source: str, etag: str, key: str, content_type: str, attachment: bool) -> None:
        path = self._unchanged(source, etag)
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{target}.meta").write_text(json.dumps({"content_type": content_type, "attachment": attachment}))
        if source != key:
            os.replace(path, target)
            Path(f"{path}.meta").unlink(missing_ok=True)

    async def download_url(self, key: str, expires: int) -> str:
        signature = self._sign(f"GET\n{key}\n{expires}")
        return f"{self.base}/{key}?" + urlencode({"expires": expires, "signature": signature})

    async def public_url(self, key: str) -> str:
        return f"{self.base}/{key}"

    async def delete(self, key: str) -> None:
        path = self._path(key)
        for file in (path, Path(f"{path}.meta")):
            file.unlink(missing_ok=True)

    # Resumable uploads: a session directory under .multipart/ holds the parts until complete.

    def _session(self, upload_id: str) -> Path:
        if not UPLOAD_ID.fullmatch(upload_id):
            raise denied("No such upload.")
        return self.root / ".multipart" / upload_id

    def _load_session(self, upload_id: str) -> dict | None:
        try:
            return json.loads((self._session(upload_id) / "session.json").read_text())
        except FileNotFoundError:
            return None

    async def start_multipart(self, key: str, content_type: str, size: int, part_size: int) -> str:
        upload_id = secrets.token_urlsafe(16)
        session = self._session(upload_id)
        session.mkdir(parents=True)
        (session / "session.json").write_text(json.dumps({"key": self._path(key).relative_to(self.root).as_posix(),
                                                          "content_type": content_type, "size": size,
                                                          "part_size": part_size, "initiated": int(time.time())}))
        return upload_id

    async def part_url(self, key: str, upload_id: str, number: int, expires: int) -> str:
        signature = self._sign(f"PUT\n{upload_id}\n{number}\n{expires}")
        return f"{self.base}/parts/{upload_id}/{number}?" + urlencode({"expires": expires, "signature": signature})

    async def parts(self, key: str, upload_id: str) -> list[Part] | None:
        def read() -> list[Part] | None:
            session = self._session(upload_id)
            if self._load_session(upload_id) is None:
                return None
            found = [int(path.stem) for path in session.glob("*.etag")]
            return [Part(n, (session / f"{n}.etag").read_text(), (session / str(n)).stat().st_size)
                    for n in sorted(found)]

        return await asyncio.to_thread(read)

    async def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        received = {part.number: part.etag for part in await self.parts(key, upload_id) or []}
        if any(received.get(number) != etag for number, etag in parts):
            raise Changed(key)
        session, path = self._session(upload_id), self._path(key)
        content_type = self._load_session(upload_id)["content_type"]
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        with os.fdopen(fd, "wb") as file:
            for number, _ in parts:
                with (session / str(number)).open("rb") as part:
                    shutil.copyfileobj(part, file)
        Path(f"{path}.meta").write_text(json.dumps({"content_type": content_type}))
        os.replace(temporary, path)
        shutil.rmtree(session, ignore_errors=True)

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._session(upload_id), True)

    async def multipart_uploads(self):
        for session in sorted((self.root / ".multipart").glob("*")):
            if (found := self._load_session(session.name)) is not None:
                yield found["key"], session.name, found["initiated"]

    async def keys(self):
        def walk() -> list[str]:
            found = (str(path.relative_to(self.root)) for path in self.root.rglob("*") if path.is_file())
            return sorted(key for key in found if STORED_KEY.fullmatch(key))

        for key in await asyncio.to_thread(walk):
            yield key

    async def delete_owner(self, owner: str) -> dict[str, int]:
        prefixes = tuple(owner_prefixes(owner))
        async for key, upload_id, _ in self.multipart_uploads():
            if key.startswith(prefixes):
                await self.abort_multipart(key, upload_id)

        def remove() -> int:
            removed = 0
            for prefix in prefixes:
                for file in sorted((self.root / prefix).glob("*")):
                    removed += file.suffix != ".meta"
                    file.unlink(missing_ok=True)
            return removed

        return {"media objects": await asyncio.to_thread(remove)}

    async def probe(self) -> dict:
        def writable() -> None:
            with tempfile.TemporaryFile(dir=self.root):
                pass

        await asyncio.to_thread(writable)
        return {"backend": "local", "directory": str(self.root)}

    # The two routes that stand in for S3 and CloudFront.

    async def receive(self, request: web.Request) -> web.Response:
        """POST /local-media: the presigned form, verified before a byte of the file is stored."""
        if request.content_type != "multipart/form-data":
            raise Problem(415, "Unsupported Media Type", "Send the upload as multipart/form-data.")
        form: dict[str, str] = {}
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None and part.name != "file":
                if len(form) == MAX_FIELDS:
                    raise Problem(400, "Bad Request", "Too many form fields.")
                form[part.name] = await field_value(part)
        except (ValueError, AttributeError, HttpProcessingError):  # a malformed or nested multipart body
            raise Problem(400, "Bad Request", "The form is not well-formed multipart/form-data.") from None
        if part is None:
            raise Problem(400, "Bad Request", "The form has no file (send it last, as the field `file`).")
        key, content_type, min_size, max_size = self._allowed(form)
        path = self._path(key)
        fd, temporary = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            size = 0
            with os.fdopen(fd, "wb") as file:
                while chunk := await part.read_chunk(65536):
                    size += len(chunk)
                    if size > max_size:
                        raise Problem(400, "Bad Request", f"The file is larger than the policy's {max_size} bytes.")
                    file.write(chunk)
            if size < min_size:
                raise Problem(400, "Bad Request", f"The file is smaller than the policy's {min_size} bytes.")
            path.parent.mkdir(parents=True, exist_ok=True)
            Path(f"{path}.meta").write_text(json.dumps({"content_type": content_type}))
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        return web.Response(status=204)

    async def receive_part(self, request: web.Request) -> web.Response:
        """PUT /local-media/parts/{upload_id}/{number}: one part, exactly its size (every part but the
        last is the session's part size), under an unexpired signature; answers its ETag like S3."""
        upload_id, number = request.match_info["upload_id"], request.match_info["number"]
        expires, signature = request.query.get("expires", ""), request.query.get("signature", "")
        if not self._signed(f"PUT\n{upload_id}\n{number}\n{expires}", signature):
            raise denied("The URL's signature does not match.")
        if not expires.isdigit() or time.time() >= int(expires):
            raise denied("The URL has expired.")
        session = await asyncio.to_thread(self._load_session, upload_id)
        if session is None:
            raise Problem(404, "Not Found", "There is no such upload (completed, aborted or expired).")
        count = -(-session["size"] // session["part_size"])
        index = int(number)  # signed: one of the numbers part_url() made
        if not 1 <= index <= count:
            raise Problem(400, "Bad Request", f"Parts are numbered 1 to {count}.")
        expected = session["part_size"] if index < count else session["size"] - (count - 1) * session["part_size"]
        digest, size = hashlib.md5(usedforsecurity=False), 0
        fd, temporary = tempfile.mkstemp(dir=self._session(upload_id), prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as file:
                while chunk := await request.content.read(65536):
                    size += len(chunk)
                    if size > expected:
                        break
                    digest.update(chunk)
                    file.write(chunk)
            if size != expected:
                raise Problem(400, "Bad Request", f"Part {index} must have exactly {expected} bytes.")
            etag = f'"{digest.hexdigest()}"'
            os.replace(temporary, self._session(upload_id) / str(index))
            (self._session(upload_id) / f"{index}.etag").write_text(etag)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        return web.Response(status=200, headers={"ETag": etag})

    def _allowed(self, form: dict[str, str]) -> tuple[str, str, int, int]:
        """What the signed policy lets this form store: (key, content type, min size, max size)."""
        encoded = form.pop("policy", "")
        if not self._signed(encoded, form.pop("signature", "")):
            raise denied("The policy's signature does not match.")
        policy = json.loads(base64.b64decode(encoded))
        if time.time() >= policy["expiration"]:
            raise denied("The policy has expired.")
        if form != policy["fields"]:
            raise denied("The form's fields are not the ones the policy names.")
        return form["key"], form["Content-Type"], *policy["content-length-range"]

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """GET /local-media/{key}: avatars for anyone, other objects with a valid signature."""
        key = "{prefix}/{owner}/{name}".format_map(request.match_info)
        if not KEY.fullmatch(key):  # never an upload not yet published
            raise Problem(404, "Not Found", "There is no such object.")
        if not key.startswith(PUBLIC_PREFIX):
            expires, signature = request.query.get("expires", ""), request.query.get("signature", "")
            if not self._signed(f"GET\n{key}\n{expires}", signature):
                raise denied("The URL's signature does not match.")
            if not expires.isdigit() or time.time() >= int(expires):
                raise denied("The URL has expired.")
        try:
            meta = json.loads(await asyncio.to_thread(Path(f"{self._path(key)}.meta").read_text))
        except FileNotFoundError:
            raise Problem(404, "Not Found", "There is no such object.") from None
        headers = {"Content-Type": meta["content_type"], "X-Content-Type-Options": "nosniff"}
        if meta.get("attachment"):
            headers["Content-Disposition"] = "attachment"
        return web.FileResponse(self._path(key), headers=headers)
