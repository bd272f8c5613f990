"""Drills reuse the core's sample plugin distribution (a slow route, a validated echo)."""
from tests.core.conftest import sample_plugin  # noqa: F401  (a fixture)
