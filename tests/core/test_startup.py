"""Start-up and stop as an operator sees them, with real processes (`python -m gateway serve` and
gunicorn with the production config): a busy port, a failed start-up and bad configuration each end
in one line on stderr and a non-zero exit within 5 s; a clean stop logs nothing at error level."""
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from devsupport.servers import free_port, wait_for_port

COMMANDS = {
    "serve": [sys.executable, "-m", "gateway", "serve"],
    "gunicorn": [sys.executable, "-m", "gunicorn", "-c", "python:gateway.gunicorn_conf", "gateway.app:create_app()"],
}
RUNNERS = pytest.mark.parametrize("runner", sorted(COMMANDS))


def environment(tmp_path, port: int, **extra) -> dict:
    return {**os.environ, "GATEWAY_DATA_DIR": str(tmp_path / "var"), "GATEWAY_PORT": str(port),
            "GATEWAY_WORKERS": "2", **extra}


def start(runner: str, env: dict) -> subprocess.CompletedProcess:
    """Run a start-up that must fail; the timeout is the 5 s bound (a hang raises TimeoutExpired)."""
    return subprocess.run(COMMANDS[runner], env=env, capture_output=True, text=True, timeout=5)


def error_entries(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines()
            if line.startswith("{") and json.loads(line)["level"] in ("error", "critical")]


@RUNNERS
def test_a_busy_port_is_one_line_naming_the_address_and_the_variables(runner, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = start(runner, environment(tmp_path, port))
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        f"cannot listen on 127.0.0.1:{port}: Address already in use; "
        "choose another address with GATEWAY_HOST/GATEWAY_PORT"
    ]
    assert "Traceback" not in done.stdout


@RUNNERS
def test_a_failed_start_up_is_one_line_after_the_database_was_opened(runner, tmp_path):
    """The media store cannot create its directory, after the data plugin opened SQLite (whose
    threads used to keep the process alive); under gunicorn every worker fails, one line is printed."""
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "media").write_text("a file where the media directory should be")
    done = start(runner, environment(tmp_path, free_port()))
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        f"start-up failed: FileExistsError: [Errno 17] File exists: '{tmp_path / 'var' / 'media'}'"
    ]
    assert "Traceback" not in done.stdout


def test_the_traceback_of_a_failed_start_up_is_logged_at_debug(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "media").write_text("")
    done = start("serve", environment(tmp_path, free_port(), GATEWAY_LOG_LEVEL="DEBUG"))
    assert len(done.stderr.splitlines()) == 1
    failure = [json.loads(line) for line in done.stdout.splitlines() if '"start-up failed"' in line]
    assert failure and failure[0]["level"] == "debug" and "Traceback" in failure[0]["exception"]


@RUNNERS
def test_bad_configuration_is_one_line_per_variable(runner, tmp_path):
    done = start(runner, environment(tmp_path, 8080, GATEWAY_PORT="0x50", GATEWAY_LOG_LEVEL="LOUD"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "configuration error:",
        "  GATEWAY_LOG_LEVEL: Must be one of: DEBUG, INFO, WARNING, ERROR.",
        "  GATEWAY_PORT: Not a valid integer.",
    ]


@RUNNERS
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_clean_stop_logs_nothing_at_error_level(runner, sig, tmp_path):
    port = free_port()
    # One worker: a stop that reaches gunicorn while a second worker is still booting is lost by
    # that worker (it is killed at the graceful timeout), a race of gunicorn's, not of this test.
    process = subprocess.Popen(COMMANDS[runner], env=environment(tmp_path, port, GATEWAY_WORKERS="1"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready") as response:
            assert response.status == 200
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert stderr == ""
    assert error_entries(stdout) == []
    assert "Error while closing socket" not in stdout
