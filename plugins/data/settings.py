"""Data plugin settings: where the database and the cache are, how to reach them (TLS, the
credentials' secret), and how patient to be with them.

`DATABASE_URL`/`DATABASE_READ_URL`/`CACHE_URL` take the query options `tls=verify` (encrypt, check
the certificate chain and the host name) or `tls=required` (encrypt only; refused in production),
and `tls_ca=/path/ca.pem` (trust this CA instead of the system's trust store).
"""
from __future__ import annotations

import ipaddress
import os
import ssl
from urllib.parse import parse_qsl, unquote, urlsplit

from marshmallow import ValidationError, fields, pre_load, validate, validates_schema

from gateway.settings import CoreSettings, SettingsSchema


TLS_MODES = ("verify", "required")


def url_options(url: str) -> dict[str, str]:
    """The query options of a URL (`tls`, `tls_ca`)."""
    return dict(parse_qsl(url.partition("?")[2], keep_blank_values=True))


def check_tls_options(url: str) -> None:
    options = url_options(url)
    unknown = sorted(options.keys() - {"tls", "tls_ca"})
    if unknown:
        raise ValidationError(f"unknown option {unknown[0]!r} (known: tls, tls_ca)")
    if "tls" in options and options["tls"] not in TLS_MODES:
        raise ValidationError("tls must be verify or required")
    if "tls_ca" in options:
        if options.get("tls") != "verify":
            raise ValidationError("tls_ca goes with tls=verify")
        if not os.path.isfile(options["tls_ca"]):
            raise ValidationError(f"tls_ca: no such file {options['tls_ca']!r}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class DatabaseUrl(fields.Str):
    """`sqlite:///path` or `mysql://user:pass@host:port/db[?tls=verify&tls_ca=path]`, checked for shape
    at start-up."""

    def _deserialize(self, value, attr, data, **kwargs):
        url = super()._deserialize(value, attr, data, **kwargs)
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
                raise ValidationError("use sqlite:///relative/path or sqlite:////absolute/path")
        elif parts.scheme == "mysql":
            if not parts.hostname or not parts.path.strip("/"):
                raise ValidationError("use mysql://user:password@host:3306/database")
            check_tls_options(url)
        else:
            raise ValidationError("the scheme must be sqlite:// or mysql://")
        return url


class CacheUrl(fields.Str):
    """`memory://`, `memcached://h1:11211,h2:11211` or `memcached+discovery://cfg-endpoint:11211`,
    the memcached ones with `?tls=...` options."""

    def _deserialize(self, value, attr, data, **kwargs):
        url = super()._deserialize(value, attr, data, **kwargs)
        scheme, _, rest = url.partition("://")
        if scheme == "memory" and not rest:
            return url
        if scheme not in ("memcached", "memcached+discovery") or not rest.partition("?")[0]:
            raise ValidationError("use memory://, memcached://host:port[,host:port] or memcached+discovery://host:port")
        for node in rest.partition("?")[0].split(","):
            host, _, port = node.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValidationError(f"{node!r} is not host:port")
        check_tls_options(url)
        return url


def memcached_nodes(url: str) -> list[tuple[str, int]]:
    nodes = url.split("://", 1)[1].partition("?")[0].split(",")
    return [(host, int(port)) for host, _, port in (n.strip().rpartition(":") for n in nodes)]


def tls_context(url: str) -> ssl.SSLContext | None:
    """The client TLS context a mysql:// URL's options ask for (None: plaintext)."""
    options = url_options(url)
    if options.get("tls") == "verify":
        return ssl.create_default_context(cafile=options.get("tls_ca"))  # chain and host name, TLS 1.2+
    if options.get("tls") == "required":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return None


def mysql_params(url: str) -> dict:
    parts = urlsplit(url)
    return {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "db": unquote(parts.path.lstrip("/")),
        "ssl": tls_context(url),
    }


def plaintext_hosts(url: str) -> list[str]:
    """The non-loopback hosts a URL reaches without verified TLS."""
    if url_options(url).get("tls") == "verify":
        return []
    if url.startswith("mysql:"):
        hosts = [urlsplit(url).hostname]
    elif url.startswith("memcached"):
        hosts = [host for host, _ in memcached_nodes(url)]
    else:
        return []
    return [host for host in hosts if not is_loopback(host)]


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
    # The app user's secret ({"username", "password"}) in this region: re-read when MySQL refuses the
    # password of a new connection (rotation), at most once per DATABASE_SECRET_REREAD_SECONDS.
    database_secret_arn = fields.Str(data_key="DATABASE_SECRET_ARN", load_default=None)
    secret_reread_interval = fields.Float(
        data_key="DATABASE_SECRET_REREAD_SECONDS", load_default=30.0, validate=validate.Range(1, 3600)
    )
    aws_region = fields.Str(data_key="AWS_REGION", load_default=None)
    aws_endpoint_url = fields.Url(data_key="AWS_ENDPOINT_URL", load_default=None, require_tld=False)
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
        problems = {}
        if data.get("database_url", "").startswith("sqlite:"):
            problems["DATABASE_URL"] = ["production needs a MySQL database, not the embedded SQLite"]
        if data.get("cache_url", "").startswith("memory:"):
            problems["CACHE_URL"] = ["production needs memcached, not the in-process cache"]
        for field, variable in (("database_url", "DATABASE_URL"), ("database_read_url", "DATABASE_READ_URL"),
                                ("cache_url", "CACHE_URL")):
            hosts = plaintext_hosts(data.get(field) or "")
            if hosts:
                problems[variable] = [f"production needs ?tls=verify to reach {hosts[0]} (no plaintext or "
                                      "unverified TLS beyond loopback)"]
        if problems:
            raise ValidationError(problems)

    @validates_schema
    def read_url_is_mysql(self, data: dict, **_: object) -> None:
        read_url = data.get("database_read_url")
        if read_url and not (read_url.startswith("mysql:") and data.get("database_url", "").startswith("mysql:")):
            raise ValidationError("a read URL goes with a mysql:// DATABASE_URL", "DATABASE_READ_URL")
