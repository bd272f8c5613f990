"""cfn-lint (the pinned version) over every CloudFormation template for both regions, and the
global stacks' templates (deployed in us-east-1) for us-east-1 too. Any error or warning fails, except the rules in
IGNORED, each with the reason it does not apply."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "infra" / "cloudformation").glob("*.yaml"))
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
IGNORED: dict[str, str] = {}  # rule id -> why it does not apply; none needed today


def lint(regions: list[str], templates: list[Path]) -> subprocess.CompletedProcess:
    ignore = ["--ignore-checks", *IGNORED] if IGNORED else []
    return subprocess.run(
        [str(CFN_LINT), "--format", "parseable", "--regions", *regions, *ignore, "--", *map(str, templates)],
        capture_output=True, text=True, timeout=120,
    )


def test_cfn_lint_is_pinned():
    version = subprocess.run([str(CFN_LINT), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.split() == ["cfn-lint", "1.58.0"]


def test_templates_pass_cfn_lint_in_both_regions():
    assert len(TEMPLATES) >= 7
    result = lint(["ap-southeast-1", "ap-south-1"], TEMPLATES)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_global_stacks_pass_cfn_lint_in_us_east_1():
    global_templates = [path for path in TEMPLATES if path.stem in ("edge-certificate", "global", "monitoring-global")]
    result = lint(["us-east-1"], global_templates)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
