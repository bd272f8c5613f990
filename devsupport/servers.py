"""Real servers for the tests, each on a free loopback port: memcached, the moto server, and
private MariaDB instances for tests that kill a database."""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def die_with_parent() -> None:
    """In the child: be killed when the test process dies, so no server outlives an aborted run."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class Server:
    """A child process listening on `port`; `stop()` kills it, `start()` brings it back on the same port."""

    def __init__(self, argv_for_port, port: int | None = None, env: dict | None = None, log: str | None = None) -> None:
        self.argv_for_port = argv_for_port
        self.port = port or free_port()
        self.env = env
        self.log = log  # where its output goes (appended), for a failing test to show
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.argv_for_port(self.port), stdout=output, stderr=output,
            env=self.env, start_new_session=True, preexec_fn=die_with_parent,
        )
        if self.log:
            output.close()
        wait_for_port(self.port, self.process)
        return self

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(10)
        self.process = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def memcached(cert: str | None = None, key: str | None = None) -> Server:
    """memcached; with `cert` and `key` (PEM files) it speaks TLS only (`-Z`)."""
    binary = shutil.which("memcached")
    if binary is None:
        raise RuntimeError("memcached is not installed: run scripts/install-tools.sh (make test does)")
    as_root = ["-u", "root"] if os.geteuid() == 0 else []  # memcached refuses to run as root without -u
    tls = ["-Z", "-o", f"ssl_chain_cert={cert},ssl_key={key}"] if cert else []
    return Server(lambda port: [binary, *as_root, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-t", "2",
                                *tls])


def gateway(env: dict, workers: int = 1, log: str | None = None) -> Server:
    """The gateway under gunicorn with the production config module, as the AMI runs it."""
    port = free_port()
    return Server(
        lambda port: [sys.executable, "-m", "gunicorn", "-c", "python:gateway.gunicorn_conf", "gateway.app:create_app()"],
        port,
        env={**os.environ, **env, "GATEWAY_PORT": str(port), "GATEWAY_WORKERS": str(workers)},
        log=log,
    )


def moto() -> Server:
    return Server(lambda port: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])


def moto_reset(endpoint: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).read()


class PrivateMariaDB(Server):
    """A throwaway mariadbd in a temporary directory, for tests that kill or restart a database.
    The machine's own MariaDB on 3306 is never touched. With `tls=(cert, key, ca)` (PEM files) it
    requires TLS of every TCP client (the unix socket at `socket` stays open to root)."""

    def __init__(self, tls: tuple[str, str, str] | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="gw-mariadb-")
        datadir = os.path.join(self.dir, "data")
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        subprocess.run(
            [install, "--no-defaults", f"--datadir={datadir}", "--auth-root-authentication-method=normal", "--skip-test-db",
             "--user=root" if os.geteuid() == 0 else f"--user={os.getlogin()}"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        super().__init__(lambda port: [
            shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={datadir}",
            f"--socket={self.dir}/sock", f"--pid-file={self.dir}/pid", "--bind-address=127.0.0.1", f"--port={port}",
            "--skip-grant-tables=0", "--innodb-buffer-pool-size=32M", "--skip-log-bin",
            *(["--user=root"] if os.geteuid() == 0 else []),
            *([f"--ssl-cert={tls[0]}", f"--ssl-key={tls[1]}", f"--ssl-ca={tls[2]}", "--require-secure-transport=ON"]
              if tls else []),
        ])
        self.socket = f"{self.dir}/sock"

    def create_database(self, name: str) -> str:
        """A new, empty utf8mb4_bin database (made as root over the unix socket, so TLS-only
        servers too); its mysql:// URL for root over TCP."""
        import pymysql

        admin = pymysql.connect(unix_socket=self.socket, user="root", password="", autocommit=True)
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        finally:
            admin.close()
        return f"mysql://root@127.0.0.1:{self.port}/{name}"

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
