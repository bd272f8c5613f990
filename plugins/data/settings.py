"""Data plugin settings: where the database and the cache are, and how patient to be with them."""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

from marshmallow import ValidationError, fields, pre_load, validate, validates_schema

from gateway.settings import CoreSettings, SettingsSchema


class DatabaseUrl(fields.Str):
    """`sqlite:///path` or `mysql://user:pass@host:port/db`, checked for shape at start-up."""

    def _deserialize(self, value, attr, data, **kwargs):
        url = super()._deserialize(value, attr, data, **kwargs)
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
                raise ValidationError("use sqlite:///relative/path or sqlite:////absolute/path")
        elif parts.scheme == "mysql":
            if not parts.hostname or not parts.path.strip("/"):
                raise ValidationError("use mysql://user:password@host:3306/database")
        else:
            raise ValidationError("the scheme must be sqlite:// or mysql://")
        return url


class CacheUrl(fields.Str):
    """`memory://`, `memcached://h1:11211,h2:11211` or `memcached+discovery://cfg-endpoint:11211`."""

    def _deserialize(self, value, attr, data, **kwargs):
        url = super()._deserialize(value, attr, data, **kwargs)
        scheme, _, rest = url.partition("://")
        if scheme == "memory" and not rest:
            return url
        if scheme not in ("memcached", "memcached+discovery") or not rest:
            raise ValidationError("use memory://, memcached://host:port[,host:port] or memcached+discovery://host:port")
        for node in rest.split(","):
            host, _, port = node.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValidationError(f"{node!r} is not host:port")
        return url


def memcached_nodes(url: str) -> list[tuple[str, int]]:
    return [(host, int(port)) for host, _, port in (n.strip().rpartition(":") for n in url.split("://", 1)[1].split(","))]


def mysql_params(url: str) -> dict:
    parts = urlsplit(url)
    return {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "db": unquote(parts.path.lstrip("/")),
    }


class DataSettings(SettingsSchema):
    database_url = DatabaseUrl(data_key="DATABASE_URL", required=True)  # default set in pre_load
    database_read_url = DatabaseUrl(data_key="DATABASE_READ_URL", load_default=None)
    query_timeout = fields.Float(
        data_key="DATABASE_QUERY_TIMEOUT_SECONDS", load_default=5.0, validate=validate.Range(0.1, 300)
    )
    connect_timeout = fields.Float(
        data_key="DATABASE_CONNECT_TIMEOUT_SECONDS", load_default=3.0, validate=validate.Range(0.1, 60)
    )
    pool_max = fields.Int(data_key="DATABASE_POOL_MAX", load_default=10, validate=validate.Range(1, 500))
    # Connections are recycled this long after last use; the session's wait_timeout is set above it,
    # so the server never closes a connection the pool still considers usable.
    pool_recycle = fields.Int(
        data_key="DATABASE_POOL_RECYCLE_SECONDS", load_default=280, validate=validate.Range(10, 28000)
    )
    # Lists a caller reads within this long after their own write go to the writer, not the replica.
    read_max_lag = fields.Float(
        data_key="DATABASE_READ_MAX_LAG_SECONDS", load_default=30.0, validate=validate.Range(0, 3600)
    )
    migrate_on_start = fields.Bool(data_key="DATA_MIGRATE_ON_START", required=True)  # default set in pre_load
    cache_url = CacheUrl(data_key="CACHE_URL", load_default="memory://")
    cache_ttl = fields.Int(data_key="CACHE_TTL_SECONDS", load_default=300, validate=validate.Range(1, 86400))
    cache_timeout = fields.Float(
        data_key="CACHE_OP_TIMEOUT_SECONDS", load_default=0.1, validate=validate.Range(0.005, 10)
    )
    cache_max_connections = fields.Int(
        data_key="CACHE_MAX_CONNECTIONS", load_default=8, validate=validate.Range(1, 64)
    )
    cache_memory_items = fields.Int(
        data_key="CACHE_MEMORY_MAX_ITEMS", load_default=10000, validate=validate.Range(1, 10_000_000)
    )

    @pre_load
    def defaults_from_environment(self, data: dict, **_: object) -> dict:
        data = dict(data)
        data.setdefault("DATABASE_URL", f"sqlite:///{data.get('GATEWAY_DATA_DIR', CoreSettings.DEFAULT_DATA_DIR)}/gateway.db")
        data.setdefault("DATA_MIGRATE_ON_START", str(data.get("GATEWAY_ENV", "development") != "production"))
        return data

    @validates_schema
    def production_backends(self, data: dict, **_: object) -> None:
        if data.get("environment") != "production":
            return
        if data.get("database_url", "").startswith("sqlite:"):
            raise ValidationError("production needs a MySQL database, not the embedded SQLite", "DATABASE_URL")
        if data.get("cache_url", "").startswith("memory:"):
            raise ValidationError("production needs memcached, not the in-process cache", "CACHE_URL")

    @validates_schema
    def read_url_is_mysql(self, data: dict, **_: object) -> None:
        read_url = data.get("database_read_url")
        if read_url and not (read_url.startswith("mysql:") and data.get("database_url", "").startswith("mysql:")):
            raise ValidationError("a read URL goes with a mysql:// DATABASE_URL", "DATABASE_READ_URL")
