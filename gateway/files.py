"""Files the gateway creates once and shares between workers (the local issuer's key, the local
store's secret): written completely before they appear, readable by the owner only, and the
first worker to create one wins the race."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def create_once(path: str | Path, data: bytes) -> bool:
    """Create `path` holding `data`, mode 0600, atomically; False if it already existed (another
    worker's file stands, and `data` is discarded)."""
    directory = Path(path).absolute().parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".new-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.link(temporary, path)  # unlike rename, fails when the name exists
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)
