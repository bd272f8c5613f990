"""What an upload really is, from its leading bytes: complete reads the first SNIFF_BYTES of the
stored object (a ranged GET, never the whole object) and accepts it only if they are a file of the
declared type. ISO base media files (HEIC/HEIF, MP4, QuickTime) are told apart by the brands of
their leading `ftyp` box."""
from __future__ import annotations

SNIFF_BYTES = 64

HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
HEIF_BRANDS = HEIC_BRANDS | {b"mif1", b"msf1", b"heif"}
MP4_BRANDS = {b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash", b"mmp4",
              b"M4V ", b"MSNV"}
QUICKTIME_BRANDS = {b"qt  "}


def brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of a leading `ftyp` box (as far as `data` reaches), or none."""
    if data[4:8] != b"ftyp":
        return set()
    end = min(int.from_bytes(data[:4], "big"), len(data))
    return {data[8:12], *(data[i:i + 4] for i in range(16, end - 3, 4))}


SIGNATURES = {
    "image/jpeg": lambda data: data.startswith(b"\xff\xd8\xff"),
    "image/png": lambda data: data.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/gif": lambda data: data[:6] in (b"GIF87a", b"GIF89a"),
    "image/webp": lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP",
    "image/heic": lambda data: bool(brands(data) & HEIC_BRANDS),
    "image/heif": lambda data: bool(brands(data) & HEIF_BRANDS),
    "video/mp4": lambda data: bool(brands(data) & MP4_BRANDS),
    "video/quicktime": lambda data: bool(brands(data) & QUICKTIME_BRANDS) or data[4:8] in (b"moov", b"mdat", b"wide"),
    "application/pdf": lambda data: data.startswith(b"%PDF-"),
}


def mismatch(content_type: str, data: bytes) -> str | None:
    """None when `data` (the leading bytes) starts a `content_type` file, else why not."""
    if SIGNATURES[content_type](data):
        return None
    looks = next((name for name, matches in SIGNATURES.items() if matches(data)), None)
    return (f"The upload's content is not {content_type}"
            + (f" (it looks like {looks})." if looks else " (its first bytes are no type this gateway accepts)."))
