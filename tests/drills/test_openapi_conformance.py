"""schemathesis against /openapi.json with a valid token: whatever it generates, no 5xx, and every
response conforms to the documented status codes, content types and schemas."""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from plugins.auth.issuer import LocalIssuer
from devsupport import servers

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_generated_requests_get_documented_answers(tmp_path):
    env = {"GATEWAY_ENV": "test", "GATEWAY_DATA_DIR": str(tmp_path / "var"), "GATEWAY_LOG_LEVEL": "WARNING"}
    app = servers.gateway(env, workers=1, log=str(tmp_path / "gateway.log")).start()
    try:
        token = LocalIssuer(Path(env["GATEWAY_DATA_DIR"]) / "dev-signing-key.pem").mint("schemathesis-user")
        binary = shutil.which("schemathesis", path=os.path.dirname(sys.executable))
        done = subprocess.run(
            [binary, "run", f"http://{app.address}/openapi.json", "--header", f"Authorization: Bearer {token}",
             "--checks", CHECKS, "--max-examples", "25", "--seed", "20261126", "--request-timeout", "10",
             "--no-color"],
            capture_output=True, text=True, timeout=240, cwd=tmp_path,
        )
    finally:
        app.stop(signal.SIGTERM)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
