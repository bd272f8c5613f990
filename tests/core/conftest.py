"""Core fixtures: the sample plugin distribution, installed into the test environment for the session."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = Path(__file__).parent.parent / "fixtures" / "sample-plugin"


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def sample_plugin(tmp_path_factory):
    """pip-installs tests/fixtures/sample-plugin (a separate distribution) and removes it afterwards."""
    # A copy, so the build leaves nothing behind in the repository.
    source = tmp_path_factory.mktemp("sample") / "sample-plugin"
    subprocess.run(["cp", "-r", str(SAMPLE), str(source)], check=True)
    pip("install", "--no-deps", "--no-build-isolation", str(source))
    importlib.invalidate_caches()
    yield "sample"
    pip("uninstall", "-y", "gateway-sample-plugin")
