"""docs/INTERFACE.md (the contract) and the README keep step with the code: every variable that a
settings schema accepts (the core's and those of every plugin this project registers, found through
the entry points, so a new plugin is covered when it is registered) is in the README's configuration
table and in the contract's, and every route of /openapi.json, built with the default plugins, is in
the contract's route table."""
from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from gateway.app import OPENAPI, build
from gateway.loader import GROUP
from gateway.settings import CoreSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = {name: (ROOT / name).read_text() for name in ("README.md", "docs/INTERFACE.md")}


def project_plugins() -> list:
    """This distribution's plugins; one installed by a test (the sample plugin) is not the project's."""
    return [ep.load() for ep in entry_points(group=GROUP) if ep.dist.name == "mobile-gateway"]


def variables() -> set[str]:
    schemas = [CoreSettings] + [plugin.settings for plugin in project_plugins() if plugin.settings]
    return {field.data_key or name for schema in schemas for name, field in schema().fields.items()}


def table_variables(text: str) -> set[str]:
    """The backticked names in the first column of every table row."""
    return {name for line in text.splitlines() if line.startswith("| `")
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])}


def test_the_project_registers_plugins_with_settings():
    names = {plugin.name for plugin in project_plugins()}
    assert set(CoreSettings.DEFAULT_PLUGINS) <= names
    assert {"GATEWAY_PORT", "DATABASE_URL", "AUTH_TOKEN_USE", "MEDIA_BUCKET", "HEALTH_READY_CACHE_SECONDS"} <= variables()


@pytest.mark.parametrize("document", sorted(DOCS))
def test_every_settings_variable_is_in_the_configuration_table(document):
    missing = variables() - table_variables(DOCS[document])
    assert not missing, f"{document}'s configuration table lacks {sorted(missing)}"


def test_every_route_of_the_openapi_document_is_in_the_contract(tmp_path):
    document = build({"GATEWAY_ENV": "test", "GATEWAY_DATA_DIR": str(tmp_path)}).app[OPENAPI]
    routes = [("GET", "/openapi.json")] + [
        (method.upper(), path) for path, operations in document["paths"].items() for method in operations
    ]
    assert len(routes) > 10
    contract = DOCS["docs/INTERFACE.md"]
    missing = [f"{method} {path}" for method, path in routes
               if not re.search(rf"^\| `{re.escape(f'{method} {path}')}[`?]", contract, re.MULTILINE)]
    assert not missing, f"docs/INTERFACE.md's route table lacks {missing}"
