"""JSON logs on stdout, one object per line, for the CloudWatch agent (or a terminal) to read."""
from __future__ import annotations

import json
import logging
import sys
import time

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # botocore's DEBUG logs carry request and response bodies: a secret's value, a presigned URL.
    for name in ("botocore", "aiobotocore"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    # aiohttp's own access logger is replaced by gateway.accesslog.
    logging.getLogger("aiohttp.access").disabled = True
