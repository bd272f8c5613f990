"""Settings from environment variables, validated with marshmallow before anything starts.

The core and every plugin each declare a `SettingsSchema`; its fields' `data_key`s are the
environment variable names. All schemas are loaded together so that one start-up reports every
bad variable at once (`SettingsError`), never a traceback.
"""
from __future__ import annotations

import ipaddress
import os
import re
from types import SimpleNamespace
from typing import Mapping

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema


class SettingsError(Exception):
    """Bad configuration: `problems` maps each variable to what is wrong with it."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        self.problems = problems
        super().__init__(self.describe())

    def describe(self) -> str:
        lines = ["configuration error:"]
        for variable, messages in sorted(self.problems.items()):
            for message in messages:
                lines.append(f"  {variable}: {message}")
        return "\n".join(lines)


class SettingsSchema(Schema):
    """Base of every settings schema: sees the whole environment and knows the deployment mode."""

    class Meta:
        unknown = EXCLUDE

    environment = fields.Str(
        data_key="GATEWAY_ENV",
        load_default="development",
        validate=validate.OneOf(["development", "test", "production"]),
    )

    @post_load
    def as_namespace(self, data: dict, **_: object) -> SimpleNamespace:
        return SimpleNamespace(**data, production=data["environment"] == "production")


class CommaList(fields.Field):
    """`a,b, c` as a tuple of non-empty stripped strings."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("must be a comma-separated list")
        return tuple(part.strip() for part in value.split(",") if part.strip())


class Networks(CommaList):
    """A comma-separated list of CIDRs."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return tuple(ipaddress.ip_network(part, strict=False) for part in super()._deserialize(value, attr, data))
        except ValueError as exc:
            raise ValidationError(f"not a list of CIDRs: {exc}") from None


ORIGIN = re.compile(r"https?://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?")


class Origins(CommaList):
    """A comma-separated list of web origins, `scheme://host[:port]`, lower case as browsers send them."""

    def _deserialize(self, value, attr, data, **kwargs):
        origins = tuple(origin.lower() for origin in super()._deserialize(value, attr, data))
        if bad := [origin for origin in origins if not ORIGIN.fullmatch(origin)]:
            raise ValidationError(f"not an origin (scheme://host[:port], no path): {', '.join(bad)}")
        return origins


class CoreSettings(SettingsSchema):
    host = fields.Str(data_key="GATEWAY_HOST", load_default="127.0.0.1")
    port = fields.Int(data_key="GATEWAY_PORT", load_default=8080, validate=validate.Range(1, 65535))
    # A second listener for the VPC only (the ALB's health checks, /metrics): readiness detail and
    # metrics are served there and never on GATEWAY_PORT. Unset: outside production they are
    # served on GATEWAY_PORT (development); in production, nowhere.
    internal_port = fields.Int(data_key="GATEWAY_INTERNAL_PORT", load_default=None,
                               validate=validate.Range(1, 65535))
    DEFAULT_PLUGINS = ("health", "auth", "data", "profiles", "media", "ratelimit")
    plugins = CommaList(data_key="GATEWAY_PLUGINS", load_default=DEFAULT_PLUGINS)
    DEFAULT_DATA_DIR = "./var"
    data_dir = fields.Str(data_key="GATEWAY_DATA_DIR", load_default=DEFAULT_DATA_DIR)
    max_body_bytes = fields.Int(
        data_key="GATEWAY_MAX_BODY_BYTES", load_default=1048576, validate=validate.Range(1024, 1 << 30)
    )
    body_timeout_seconds = fields.Float(
        data_key="GATEWAY_BODY_TIMEOUT_SECONDS", load_default=10.0, validate=validate.Range(0.1, 300)
    )
    drain_seconds = fields.Float(data_key="GATEWAY_DRAIN_SECONDS", load_default=0.0, validate=validate.Range(0, 300))
    trusted_proxies = Networks(data_key="GATEWAY_TRUSTED_PROXIES", load_default=())
    # Origins (scheme://host[:port]) whose pages may call the API from a browser (gateway/cors.py).
    cors_allowed_origins = Origins(data_key="CORS_ALLOWED_ORIGINS", load_default=())
    cors_max_age = fields.Int(data_key="CORS_MAX_AGE_SECONDS", load_default=600, validate=validate.Range(0, 86400))
    workers = fields.Int(data_key="GATEWAY_WORKERS", load_default=None, validate=validate.Range(1, 256))
    log_level = fields.Str(
        data_key="GATEWAY_LOG_LEVEL",
        load_default="INFO",
        validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]),
    )

    @validates_schema
    def plugins_named(self, data: dict, **_: object) -> None:
        if not data.get("plugins"):
            raise ValidationError("name at least one plugin", "GATEWAY_PLUGINS")
        if data.get("internal_port") is not None and data["internal_port"] == data.get("port"):
            raise ValidationError("must differ from GATEWAY_PORT", "GATEWAY_INTERNAL_PORT")


def plugin_names(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """GATEWAY_PLUGINS read leniently, to keep validating plugin settings when core settings are bad."""
    raw = (os.environ if environ is None else environ).get("GATEWAY_PLUGINS") or ""
    return tuple(name.strip() for name in raw.split(",") if name.strip()) or CoreSettings.DEFAULT_PLUGINS


def load(schema: type[SettingsSchema], environ: Mapping[str, str] | None = None) -> SimpleNamespace:
    """Load one schema from the environment; raises SettingsError naming each bad variable."""
    environ = os.environ if environ is None else environ
    # An empty variable means "unset": operators blank a variable to get the default back.
    present = {key: value for key, value in environ.items() if value != ""}
    try:
        return schema().load(present)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise SettingsError(
            {key: [str(m) for m in (value if isinstance(value, list) else [value])] for key, value in messages.items()}
        ) from None
