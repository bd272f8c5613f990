"""checkov (its own venv, offline with --skip-download) over the CloudFormation templates: no
failed check, no parsing error, and every inline skip carries a written reason and matches a
check that actually ran (no dead skips). A missing checkov is a failure, never a skip."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from tests.infra.test_cloudformation import CfnLoader

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "infra" / "cloudformation"
CHECKOV = Path(os.environ.get("CHECKOV", ROOT / ".venv-checkov" / "bin" / "checkov"))


def inline_skips() -> set[tuple[str, str, str]]:
    """{(template, resource, check id)} of every Metadata checkov skip, asserting its reason."""
    skips = set()
    for path in TEMPLATES.glob("*.yaml"):
        template = yaml.load(path.read_text(), Loader=CfnLoader)
        for name, resource in template["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert len(skip.get("comment", "").split()) >= 5, f"{path.name} {name} {skip['id']}: no reason"
                skips.add((path.name, name, skip["id"]))
    return skips


def test_checkov_passes_offline():
    assert CHECKOV.is_file(), f"checkov not installed at {CHECKOV} (scripts/install-tools.sh installs it)"
    result = subprocess.run(
        [str(CHECKOV), "-d", str(TEMPLATES), "--framework", "cloudformation", "--skip-download",
         "--output", "json"],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )
    report = json.loads(result.stdout)
    summary, results = report["summary"], report["results"]
    failed = [f"{c['check_id']} {c['resource']} {c['file_path']}: {c['check_name']}" for c in results["failed_checks"]]
    assert not failed, "\n".join(failed)
    assert summary["parsing_errors"] == 0 and summary["passed"] > 100
    skipped = {(Path(c["file_path"]).name, c["resource"].split(".", 1)[1], c["check_id"])
               for c in results["skipped_checks"]}
    assert skipped == inline_skips()
