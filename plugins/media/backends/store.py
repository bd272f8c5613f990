"""What every media store shares: the operations, the keys and `Head`.

Every store (S3 in `s3.py`, the embedded one in `local.py`) offers the same operations:

    await store.presign_upload(key, content_type, size, expires)  -> (url, form fields for exactly
                                                                 that type and size)
    await store.head(key)                  -> Head(size, content_type, etag) or None
    await store.read_start(key, etag)      -> the object's first SNIFF_BYTES (a ranged read)
    await store.publish(source, etag, key, content_type, attachment)
                                           -> the checked upload becomes the object `key`, served
                                              with that type (and as an attachment if so)
    await store.download_url(key, expires) -> a URL that works until `expires` (epoch seconds)
    await store.public_url(key)            -> a URL for an avatar that does not expire
    await store.delete(key)                -> gone (no error if it already was)
    store.keys()                           -> every object key in the store (async iterator), for
                                              the removal of objects no record names

Resumable uploads are S3 multipart uploads (the local store speaks the same protocol):

    await store.start_multipart(key, content_type, size, part_size)  -> an upload id
    await store.part_url(key, upload_id, number, expires)    -> a URL to PUT part `number` to
    await store.parts(key, upload_id)                        -> [Part(number, etag, size)] received,
                                                                or None if there is no such upload
    await store.complete_multipart(key, upload_id, parts)    -> the object `key` from [(number, etag)]
    await store.abort_multipart(key, upload_id)              -> gone (no error if it already was)
    store.multipart_uploads()                                -> (key, upload id, initiated epoch) of
                                                                every upload in progress (async iterator)
    await store.delete_owner(owner)        -> every object under the owner's prefixes gone (an account
                                              deletion's hook): {"media objects": how many}
    await store.probe()                    -> readiness details; raises when unusable
    store.context                          -> the cleanup context that opens and closes it

`read_start` and `publish` raise `Changed` when the object no longer has the etag `head` gave.

URLs are absolute: the local store's start with MEDIA_LOCAL_PUBLIC_URL (by default the gateway's
listen address), never with the host a request names. The server chooses every key,
`{prefix}/{owner}/{media id}.{extension}`: avatars under
`avatars/` (a public path on the CDN, see docs/decisions/avatar-urls.md), everything else under
`u/` (signed URLs only). Uploads land under `incoming/` + that key, which is never served; complete
publishes a checked upload to its key (docs/decisions/media-immutability.md).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "application/pdf": "pdf",
}
PREFIXES = {"avatar": "avatars"}
DEFAULT_PREFIX = "u"
PLAIN_OWNER = re.compile(r"[A-Za-z0-9_-]{1,128}")
INCOMING = "incoming/"
# Every key object_key() makes, and nothing else: no dots outside the extension, no empty segments.
KEY = re.compile(r"(?:u|avatars)/(?:[A-Za-z0-9_-]{1,128}|~[0-9a-f]{32})/([A-Za-z0-9_-]{1,64})\.[a-z0-9]{1,8}")
# Those and their uploads' keys.
STORED_KEY = re.compile(f"(?:{INCOMING})?{KEY.pattern}")


@dataclass(frozen=True)
class Head:
    size: int
    content_type: str
    etag: str


@dataclass(frozen=True)
class Part:
    number: int
    etag: str
    size: int


class Changed(Exception):
    """The upload changed (was posted again) between its check and its use: nothing was published."""


def owner_segment(sub: str) -> str:
    """The owner's prefix: the subject itself when it is plain (Cognito's UUIDs), else a digest, so
    that no subject can put `/` or `..` into a key."""
    return sub if PLAIN_OWNER.fullmatch(sub) else "~" + hashlib.blake2b(sub.encode(), digest_size=16).hexdigest()


def object_key(purpose: str, owner: str, media_id: str, content_type: str) -> str:
    prefix = PREFIXES.get(purpose, DEFAULT_PREFIX)
    return f"{prefix}/{owner_segment(owner)}/{media_id}.{EXTENSIONS[content_type]}"


def incoming_key(key: str) -> str:
    """Where the upload for `key` lands."""
    return INCOMING + key


def media_id(key: str) -> str | None:
    """The media id in a stored key (an upload's too), or None for a key the gateway never makes."""
    found = STORED_KEY.fullmatch(key)
    return found and found.group(1)


def owner_prefixes(owner: str) -> list[str]:
    """Where an owner's objects are, whatever their purpose: `avatars/{owner}/`, `u/{owner}/`, and
    the uploads under `incoming/`."""
    final = [f"{prefix}/{owner_segment(owner)}/" for prefix in (*PREFIXES.values(), DEFAULT_PREFIX)]
    return final + [incoming_key(prefix) for prefix in final]
