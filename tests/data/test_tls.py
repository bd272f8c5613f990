"""TLS drill: a private mariadbd that requires secure transport and a `memcached -Z`, both with
certificates from a test CA made here. The gateway connects and verifies (chain and host name); a
wrong CA, a wrong host name, plaintext to a TLS-only server and a server without TLS are each
refused, and the readiness check says why in one line."""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devsupport import servers


def certificate(subject: str, key, issuer: tuple | None = None, hosts: tuple[str, ...] = ()) -> x509.Certificate:
    """A CA certificate (no issuer: self-signed) or a server certificate for `hosts`, signed by `issuer`."""
    issuer_key, issuer_cert = issuer or (key, None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_cert.subject if issuer_cert else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                              critical=False)
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True))
    if issuer is None:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        names = [x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h) for h in hosts]
        builder = (builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(issuer_key, hashes.SHA256())


def write(path: Path, *items) -> str:
    path.write_bytes(b"".join(
        item.public_bytes(serialization.Encoding.PEM) if isinstance(item, x509.Certificate) else
        item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        for item in items))
    return str(path)


@dataclass
class Pki:
    ca: str
    other_ca: str  # a CA that signed nothing the servers present
    cert: str  # the servers' certificate, for 127.0.0.1 only
    key: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = certificate("gateway test CA", ca_key)
    server = certificate("127.0.0.1", server_key, issuer=(ca_key, ca), hosts=("127.0.0.1",))
    return Pki(ca=write(directory / "ca.pem", ca),
               other_ca=write(directory / "other-ca.pem", certificate("another CA", other_key)),
               cert=write(directory / "server.pem", server), key=write(directory / "server-key.pem", server_key))


@pytest.fixture(scope="module")
def tls_mariadb(pki):
    """mariadbd with `--require-secure-transport=ON` and the test CA's certificate; database `gw`."""
    server = servers.PrivateMariaDB(tls=(pki.cert, pki.key, pki.ca))
    server.start()
    server.create_database("gw")
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def tls_memcached(pki):
    server = servers.memcached(cert=pki.cert, key=pki.key).start()
    yield server
    server.stop()


async def readiness(app) -> dict:
    return (await (await app.client.get("/health/ready")).json())["checks"]


async def test_the_gateway_verifies_the_database_and_the_cache(start_app, user, pki, tls_mariadb, tls_memcached):
    sub, auth = user
    app = await start_app(DATABASE_URL=f"mysql://root@127.0.0.1:{tls_mariadb.port}/gw?tls=verify&tls_ca={pki.ca}",
                          CACHE_URL=f"memcached://{tls_memcached.address}?tls=verify&tls_ca={pki.ca}")
    assert (await app.client.get("/v1/me", headers=auth)).status == 200
    checks = await readiness(app)
    assert checks["database"]["status"] == "ok" and checks["cache"]["status"] == "ok", checks
    cipher = await app.database.fetch_one("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    assert cipher["Value"], "the session is not encrypted"
    assert await app.cache.backend.get(b"no-such-key") is None  # a memcached round trip over TLS


async def test_tls_required_encrypts_without_a_ca(start_app, tls_mariadb, tls_memcached):
    app = await start_app(DATABASE_URL=f"mysql://root@127.0.0.1:{tls_mariadb.port}/gw?tls=required",
                          CACHE_URL=f"memcached://{tls_memcached.address}?tls=required", DATA_MIGRATE_ON_START="false")
    checks = await readiness(app)
    assert checks["database"]["status"] == "ok" and checks["cache"]["status"] == "ok", checks


async def test_a_wrong_ca_is_refused_with_a_clear_error(start_app, pki, tls_mariadb, tls_memcached):
    app = await start_app(DATABASE_URL=f"mysql://root@127.0.0.1:{tls_mariadb.port}/gw?tls=verify&tls_ca={pki.other_ca}",
                          CACHE_URL=f"memcached://{tls_memcached.address}?tls=verify&tls_ca={pki.other_ca}",
                          DATA_MIGRATE_ON_START="false", HEALTH_READY_CACHE_SECONDS="0")
    response = await app.client.get("/health/ready")
    checks = (await response.json())["checks"]
    assert response.status == 503
    assert "certificate verify failed" in checks["database"]["error"], checks["database"]
    assert "Traceback" not in checks["database"]["error"]
    assert "certificate verify failed" in checks["cache"]["error"], checks["cache"]


async def test_a_wrong_host_name_is_refused(start_app, pki, tls_mariadb):
    app = await start_app(DATABASE_URL=f"mysql://root@localhost:{tls_mariadb.port}/gw?tls=verify&tls_ca={pki.ca}",
                          CACHE_URL="memory://", DATA_MIGRATE_ON_START="false")
    error = (await readiness(app))["database"]["error"]
    assert "certificate verify failed" in error and "localhost" in error, error


async def test_plaintext_to_a_tls_only_server_is_refused(start_app, tls_mariadb, tls_memcached):
    app = await start_app(DATABASE_URL=f"mysql://root@127.0.0.1:{tls_mariadb.port}/gw",
                          CACHE_URL=f"memcached://{tls_memcached.address}", DATA_MIGRATE_ON_START="false")
    checks = await readiness(app)
    # MariaDB refuses with 1045 (MySQL with 3159); the error says the connection was plaintext
    assert "a plaintext connection" in checks["database"]["error"], checks["database"]
    assert checks["cache"]["status"] == "fail", checks["cache"]


@pytest.fixture
def plain_mariadb():
    server = servers.PrivateMariaDB()
    server.start()
    yield server
    server.cleanup()


async def test_a_server_without_tls_is_refused_when_the_url_asks_for_it(start_app, pki, plain_mariadb, memcached_server):
    app = await start_app(DATABASE_URL=f"mysql://root@127.0.0.1:{plain_mariadb.port}/mysql?tls=verify&tls_ca={pki.ca}",
                          CACHE_URL=f"memcached://{memcached_server.address}?tls=verify&tls_ca={pki.ca}",
                          DATA_MIGRATE_ON_START="false")
    checks = await readiness(app)
    assert "does not offer TLS" in checks["database"]["error"], checks["database"]
    assert checks["cache"]["status"] == "fail", checks["cache"]
