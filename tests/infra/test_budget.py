"""infra/budget.py and its price table: the seed's table reproduced exactly, the design priced
from sourced and dated prices, and the design's quantities in step with the templates."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.infra.test_cloudformation import load, resources

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "budget.py"
# The seed document's budget table: (type, region, count, unit price, total cost)
SEED = [
    ("EC2", "ap-south-1", 2, "73.73", "147.46"),
    ("EC2", "ap-southeast-1", 2, "87.60", "175.20"),
    ("S3", "ap-southeast-1", 1, "0.25", "0.25"),
    ("ELB", "ap-southeast-1", 1, "24.24", "24.24"),
    ("Elasticache", "ap-south-1", 1, "62.05", "62.05"),
    ("Elasticache", "ap-southeast-1", 1, "87.60", "87.60"),
    ("RDS", "ap-south-1", 1, "175.93", "175.93"),
    ("RDS", "ap-southeast-1", 1, "171.55", "171.55"),
    ("APIgateway", "ap-southeast-1", 1, "60.67", "60.67"),
]


@pytest.fixture(scope="module")
def budget():
    spec = importlib.util.spec_from_file_location("budget", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prices(budget):
    return budget.load()


def run(*args: str) -> str:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=True).stdout


def test_seed_table_row_by_row(budget, prices):
    rows = [(row["type"], row["region"], row["count"], row["unit_price"], str(total))
            for row, total in budget.seed_table(prices)]
    assert rows == SEED
    assert sum(total for _, total in budget.seed_table(prices)) == Decimal("904.95")


def test_seed_option_prints_the_seed_table():
    lines = run("--seed").splitlines()
    assert lines[0].split()[:3] == ["Category", "Type", "Region"]
    body = lines[1:-1]
    assert len(body) == len(SEED)
    for line, (kind, region, count, unit, total) in zip(body, SEED):
        cells = line.split()
        assert cells[1:3] == [kind, region]
        assert cells[-3:] == [str(count), f"${unit}", f"${total}"]
    assert lines[-1].split() == ["TOTAL", "$904.95"]


def test_every_design_price_has_a_source_and_non_seed_prices_a_date(prices):
    seed_units = {row["unit_price"] for row in prices["seed"]}
    for row in prices["design"]:
        assert row["source"], row["item"]
        assert ("hourly" in row) != ("unit_price" in row), row["item"]
        if row["source"].startswith("seed"):
            assert "replaces" in row, row["item"]
            if row["source"] == "seed":
                assert row["unit_price"] in seed_units, row["item"]
        else:
            assert row["as_of"] and row["source"].startswith("https://"), row["item"]
        if row.get("unverified"):
            assert "not in the stored docs" in row["source"] or "unverified" in row["source"], row["item"]


def test_free_tiers_are_subtracted_before_pricing(budget, prices):
    assert budget.cost({"unit_price": "0.12", "count": 10, "free": 1000}, 730) == 0
    assert budget.cost({"unit_price": "0.12", "count": 1010, "free": 1000}, 730) == Decimal("1.20")
    # CloudFront's always-free tier (1 TB out, 10 million requests a month) covers the seed's volumes
    cloudfront = [row for row in prices["design"] if row["item"].startswith("CloudFront")]
    assert len(cloudfront) == 2
    assert all(budget.cost(row, prices["hours_per_month"]) == 0 for row in cloudfront)


def test_unverified_rows_are_marked_in_the_report(prices):
    out = run()
    for row in prices["design"]:
        if row.get("unverified"):
            assert f"{row['item']} *" in out, row["item"]
    assert "* price not checked against a stored AWS page" in out


def test_design_replaces_each_seed_row_once(prices):
    replaced = [row["replaces"] for row in prices["design"] if "replaces" in row]
    assert sorted(replaced) == sorted(row["id"] for row in prices["seed"])


def test_hourly_prices_become_monthly_over_730_hours(budget, prices):
    assert budget.unit_price({"hourly": "0.0319"}, 730) == Decimal("23.29")
    assert budget.cost({"hourly": "0.059", "count": 2}, 730) == Decimal("86.14")
    # the seed's own ELB row is 730 hours of (ALB-hour + 1 LCU-hour) in ap-southeast-1
    assert budget.unit_price({"hourly": "0.0332"}, prices["hours_per_month"]) == Decimal("24.24")


def test_default_report_totals_and_differences_add_up(budget, prices):
    design_total = sum(total for _, _, total in budget.design_table(prices))
    lines = budget.differences(prices)
    assert sum((new or 0) - (seed or 0) for _, seed, new in lines) == design_total - Decimal("904.95")
    out = run()
    assert f"${design_total:,.2f}" in out and "$904.95" in out
    assert out.splitlines()[-1].split()[-1] == f"+${design_total - Decimal('904.95'):,.2f}"


def _design_count(prices, words, region=None):
    return sum(row["count"] for row in prices["design"]
               if all(w in row["item"] for w in words) and region in (None, row["region"]))


def test_design_quantities_follow_the_templates(prices):
    network, region, database = load("network"), load("region"), load("database")
    nats_per_region = len(resources(network, "AWS::EC2::NatGateway"))
    assert _design_count(prices, ["NAT gateway, one per AZ"]) == 2 * nats_per_region
    assert _design_count(prices, ["Public IPv4"]) == 2 * len(resources(network, "AWS::EC2::EIP"))
    nodes = region["Resources"]["Cache"]["Properties"]["NumCacheNodes"]
    assert _design_count(prices, ["ElastiCache", "cache.t3.medium"]) == 2 * nodes
    assert region["Parameters"]["CacheNodeType"]["Default"] == "cache.t3.medium"
    instances = region["Parameters"]["MinSize"]["Default"]
    assert _design_count(prices, ["EC2 m5.large"]) == 2 * instances
    assert _design_count(prices, ["detailed monitoring"]) == 2 * instances
    root = region["Parameters"]["RootVolumeGiB"]["Default"]
    assert _design_count(prices, ["EBS gp3"], "ap-southeast-1") == instances * root
    assert database["Resources"]["Database"]["Properties"]["MultiAZ"] is True
    assert _design_count(prices, ["Multi-AZ", "db.m5.large"]) == 1
    storage = database["Parameters"]["AllocatedStorage"]["Default"]
    assert _design_count(prices, ["RDS gp3 storage"], "ap-southeast-1") == storage
    routing = load("global")
    https_checks = [c for c in resources(routing, "AWS::Route53::HealthCheck").values()
                    if c["Properties"]["HealthCheckConfig"]["Type"] == "HTTPS"]
    assert _design_count(prices, ["Route 53 health check optional feature: HTTPS"]) == len(https_checks)
    switch_checks = [c for c in resources(routing, "AWS::Route53::HealthCheck").values()
                     if c["Properties"]["HealthCheckConfig"]["Type"] in ("CALCULATED", "CLOUDWATCH_METRIC")]
    assert _design_count(prices, ["Route 53 health checks of the switch"]) == len(switch_checks)
    assert _design_count(prices, ["CloudWatch alarms of the failover switch"]) == len(resources(routing, "AWS::CloudWatch::Alarm"))
    assert not [row for row in prices["design"] if "ARC" in row["item"]]
    secrets = resources(database, "AWS::SecretsManager::Secret").values()
    copies = sum(1 + len(secret["Properties"]["ReplicaRegions"]) for secret in secrets)
    assert _design_count(prices, ["Secrets Manager secrets"]) == copies
    assert _design_count(prices, ["S3 media replica bucket"]) == _design_count(prices, ["S3 media bucket"]) * 10
    assert _design_count(prices, ["CloudWatch Logs storage at 365-day"], "ap-southeast-1") == 12 * _design_count(
        prices, ["CloudWatch Logs ingestion"], "ap-southeast-1")
    assert region["Parameters"]["LogRetentionDays"]["Default"] == 365
    assert _design_count(prices, ["KMS", "log groups"]) == 2 * len(resources(network, "AWS::KMS::Key"))


def _alarm_metrics(template: dict, role: str) -> int:
    """Alarm metrics billed for a role's copy of a template: a metric math alarm counts each metric
    it reads; an alarm whose condition leaves it out of this role counts nothing."""
    conditions = {"IsStandby": role == "standby", "BurstableCache": True, "HasEmail": True}  # default cache.t3
    total = 0
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        if conditions.get(alarm.get("Condition"), True):
            queries = alarm["Properties"].get("Metrics")
            total += sum("MetricStat" in q for q in queries) if queries else 1
    return total


def test_monitoring_is_priced_as_the_templates_deploy_it(prices):
    """The alarms, metrics, dashboards, keys and the JWKS function of the fleet's monitoring
    (monitoring.yaml in both regions, monitoring-global.yaml and the refresh in region.yaml)."""
    monitoring, regional, routing = load("monitoring"), load("region"), load("monitoring-global")
    per_region = [_alarm_metrics(monitoring, role) for role in ("primary", "standby")]
    assert per_region == [13, 14]
    assert _design_count(prices, ["alarm metrics of monitoring.yaml"]) == sum(per_region)
    assert _design_count(prices, ["alarms of monitoring-global.yaml"]) == _alarm_metrics(routing, "primary")
    filters = [f["Properties"]["MetricTransformations"][0]
               for f in resources(monitoring, "AWS::Logs::MetricFilter").values()]
    plain = sum(not f.get("Dimensions") for f in filters)
    per_route = sum(bool(f.get("Dimensions")) for f in filters)
    assert (plain, per_route) == (10, 3)
    openapi = json.loads(subprocess.run([sys.executable, "-m", "gateway", "openapi"], capture_output=True, text=True,
                                        check=True, env={**os.environ, "GATEWAY_ENV": "test",
                                                         "MEDIA_BUCKET": "media-bucket"}).stdout)
    operations = [(m, path) for path, item in openapi["paths"].items() for m in item
                  if m in ("get", "put", "post", "patch", "delete")]
    assert _design_count(prices, ["custom metrics from the app's log lines"]) == 2 * (plain + per_route * len(operations))
    assert len(resources(monitoring, "AWS::CloudWatch::Dashboard")) == 1
    assert _design_count(prices, ["dashboards, one per region"]) == 2
    keys = 2 * len(resources(monitoring, "AWS::KMS::Key")) + len(resources(routing, "AWS::KMS::Key"))
    assert _design_count(prices, ["KMS", "alarm topics"]) == keys
    (schedule,) = resources(regional, "AWS::Events::Rule").values()
    assert schedule["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    runs = 2 * prices["hours_per_month"]
    assert _design_count(prices, ["Lambda JWKS refresh requests"]) == runs
    assert _design_count(prices, ["EventBridge schedule of the JWKS refresh"]) == runs
    (function,) = resources(regional, "AWS::Lambda::Function").values()
    gb_seconds = runs * function["Properties"]["MemorySize"] / 1024  # at most 1 s a run
    assert _design_count(prices, ["Lambda JWKS refresh compute"]) == math.ceil(gb_seconds)


def test_docs_quote_the_computed_total(budget, prices):
    design_total = sum(total for _, _, total in budget.design_table(prices))
    text = (ROOT / "docs" / "infra.md").read_text()
    assert f"**${design_total:,.2f} a month, +${design_total - Decimal('904.95'):,.2f}**" in text
