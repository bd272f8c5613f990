"""Log configuration: even at DEBUG, botocore's request and response bodies (secret values,
presigned URLs) stay out of the logs."""
from __future__ import annotations

import logging

from gateway import logs


def test_debug_keeps_botocore_bodies_out():
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("botocore", "aiobotocore")}
    try:
        logs.configure("DEBUG")
        assert root.isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("botocore.parsers").isEnabledFor(logging.DEBUG)  # logs response bodies
        assert not logging.getLogger("aiobotocore.endpoint").isEnabledFor(logging.DEBUG)
        logs.configure("WARNING")
        assert not logging.getLogger("botocore.credentials").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
