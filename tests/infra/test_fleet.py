"""The fleet's timing and health semantics, the monitoring templates and the liveness report, read
from the templates, the AMI's units and `deploy.sh --plan` as deployed. Each rule names the AWS
page it comes from; docs/infra.md ("Fleet and monitoring") lists them."""
from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import subprocess
import threading
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from gateway.accesslog import AccessLog
from tests.infra import unitfile
from tests.infra.unitfile import seconds
from tests.infra.test_cloudformation import (  # noqa: F401 (plan, templates: fixtures)
    PLAN_ENV, PRIMARY, STANDBY, load, only, plan, resources, templates)

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "infra" / "packer" / "files"
# Instance launch to cloud-init's final stage on Amazon Linux 2023: an allowance, not a measurement.
OS_BOOT_SECONDS = 120
# From a metric's minute to the alarm's state change: an allowance for CloudWatch's delivery and
# evaluation, not a documented bound.
ALARM_DELAY_SECONDS = 120


def module(name: str):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), FILES / f"{name}.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def unit(name: str) -> dict[str, list[str]]:
    return unitfile.directives(FILES / name)


@pytest.fixture(scope="module")
def asg() -> dict:
    return only(load("region"), "AWS::AutoScaling::AutoScalingGroup")


@pytest.fixture(scope="module")
def boot_config():
    return module("gateway-config")


@pytest.fixture(scope="module")
def liveness():
    return module("gateway-liveness")


# --- two health semantics -------------------------------------------------------------------------

def test_group_replaces_on_liveness_only_never_on_readiness(asg):
    """Health checks for instances in an Auto Scaling group
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-health-checks.html):
    with type ELB the group replaces every instance its target group finds unhealthy, so a database
    failover (every target unready) would replace the whole fleet. Type EC2 plus the instance's own
    liveness report (set-up-a-custom-health-check.html) replaces only what no longer serves."""
    assert asg["HealthCheckType"] == "EC2"
    assert asg["TargetGroupARNs"] == [{"Ref": "TargetGroup"}]  # still registered: the ALB routes by readiness
    statements = {s["Sid"]: s for p in load("region")["Resources"]["InstanceRole"]["Properties"]["Policies"]
                  for s in p["PolicyDocument"]["Statement"]}
    report = statements["LivenessReport"]
    assert report["Action"] == "autoscaling:SetInstanceHealth"
    assert report["Resource"]["Fn::Sub"].endswith(":autoScalingGroupName/${AWS::StackName}-AutoScalingGroup-*")


def test_grace_period_covers_the_boot_budget(asg):
    """Set the health check grace period
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/health-check-grace-period.html): a health
    report inside it is ignored, so it must outlast a boot that is still within its timeouts: the OS
    and cloud-init, then the boot step and the API's start, each bounded by its unit."""
    budget = (OS_BOOT_SECONDS + seconds(unit("gateway-config.service")["TimeoutStartSec"][0])
              + seconds(unit("gateway.service")["TimeoutStartSec"][0]))
    assert asg["HealthCheckGracePeriod"] >= budget


def test_no_single_aws_call_uses_up_the_boot_steps_timeout(boot_config):
    """Retry behavior (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html):
    standard mode backs off at most 20 s between attempts. Every attempt of one call, timeouts and
    backoff included, takes at most half of gateway-config.service's TimeoutStartSec, which bounds
    the whole step (and is part of the boot budget above)."""
    config = boot_config.AWS_RETRIES
    attempts = config.retries["max_attempts"]
    worst_call = attempts * (config.connect_timeout + config.read_timeout) + (attempts - 1) * 20
    assert 2 * worst_call <= seconds(unit("gateway-config.service")["TimeoutStartSec"][0])


def test_warmup_outlasts_grace_and_liveness_detection(asg, liveness, plan):
    """Set the default instance warmup
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-default-instance-warmup.html):
    an instance refresh counts a new instance once it is warmed up. It must not count one whose
    process never started before the liveness timer could have reported it (grace, then one timer
    period and every probe). deploy.sh's refresh leaves the warmup to the group's default."""
    timer = unit("gateway-liveness.timer")
    detection = (seconds(timer["OnUnitActiveSec"][0]) + (liveness.PROBES - 1) * liveness.PAUSE
                 + liveness.PROBES * liveness.TIMEOUT)
    assert asg["DefaultInstanceWarmup"] >= asg["HealthCheckGracePeriod"] + detection
    assert not re.search(r'\\?"InstanceWarmup', (ROOT / "infra" / "deploy.sh").read_text())


def test_a_release_that_never_becomes_ready_fails_the_refresh(asg):
    """RefreshPreferences (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html):
    AlarmSpecification fails the refresh when an alarm threshold is met. With health type EC2 the
    refresh does not wait for the target group, so deploy.sh names the unhealthy-hosts alarm. Its
    window outlasts the boot budget (a slow but healthy boot never trips it) and ends, with
    CloudWatch's evaluation delay, before the warm-up, after which old instances are terminated."""
    t = load("monitoring")
    alarm = t["Resources"]["AlbUnhealthyHostsAlarm"]["Properties"]
    name = alarm["AlarmName"]["Fn::Sub"].replace("${EnvName}", "$env_name")
    assert f'\\"Alarms\\":[\\"{name}\\"]' in (ROOT / "infra" / "deploy.sh").read_text()
    window = alarm["Period"] * alarm["EvaluationPeriods"]
    assert alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"]) == alarm["EvaluationPeriods"]
    assert window >= asg["HealthCheckGracePeriod"]
    assert asg["DefaultInstanceWarmup"] >= window + ALARM_DELAY_SECONDS


def test_target_group_probes_deep_readiness_on_the_internal_port(templates, boot_config):
    """Health checks for Application Load Balancer target groups
    (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html):
    HealthCheckPort may differ from the traffic port. Traffic goes to GATEWAY_PORT, the probe to
    GATEWAY_INTERNAL_PORT, which carries the readiness detail; the listener forwards to the traffic
    port only, so API Gateway (through the VPC link and the listener) never reaches the detail. When
    every target fails, the ALB fails open: a dependency outage drains nothing."""
    tg = only(templates["region"], "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert tg["HealthCheckPath"] == "/health/ready"
    assert str(tg["Port"]) == boot_config.FIXED["GATEWAY_PORT"]
    assert tg["HealthCheckPort"] == boot_config.FIXED["GATEWAY_INTERNAL_PORT"] != boot_config.FIXED["GATEWAY_PORT"]
    (listener,) = resources(templates["region"], "AWS::ElasticLoadBalancingV2::Listener").values()
    assert listener["Properties"]["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": "TargetGroup"}}]
    assert not resources(templates["region"], "AWS::ElasticLoadBalancingV2::ListenerRule")


def test_only_the_alb_reaches_the_internal_port(templates, boot_config):
    """Security group rules (https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html):
    the internal port is open from the ALB's group and nothing else; the VPC link reaches the ALB's
    HTTPS listener only."""
    port = int(boot_config.FIXED["GATEWAY_INTERNAL_PORT"])
    network = templates["network"]
    ingress = [r["Properties"] for r in resources(network, "AWS::EC2::SecurityGroupIngress").values()
               if r["Properties"]["FromPort"] <= port <= r["Properties"]["ToPort"]]
    assert [(r["GroupId"], r["SourceSecurityGroupId"]) for r in ingress] == [
        ({"Ref": "AppSecurityGroup"}, {"Ref": "AlbSecurityGroup"})]
    egress = [r["Properties"] for r in resources(network, "AWS::EC2::SecurityGroupEgress").values()
              if r["Properties"]["FromPort"] <= port <= r["Properties"]["ToPort"]]
    assert [r["GroupId"] for r in egress] == [{"Ref": "AlbSecurityGroup"}]
    vpc_link = network["Resources"]["VpcLinkSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert [(r["FromPort"], r["ToPort"]) for r in vpc_link] == [(443, 443)]


def test_liveness_probes_the_api_port_and_not_the_migration_instance(boot_config):
    (command,) = unit("gateway-liveness.service")["ExecStart"]
    url = unitfile.command(command)[-1]
    assert url == f"http://127.0.0.1:{boot_config.FIXED['GATEWAY_PORT']}/health/live"
    # Evaluated at each run: the timer itself starts before user data has written the flag.
    assert unit("gateway-liveness.service")["ConditionPathExists"] == [
        "/etc/gateway/bootstrap.env", "!/etc/gateway/migrate"]


# --- static stability at boot, migrations once per deploy -------------------------------------------

def test_boot_path_waits_for_no_dependency_and_never_migrates():
    """Only configuration and the instance's own files may keep the API from starting."""
    service = unit("gateway.service")
    assert service["ExecStartPre"] == ["/opt/gateway/venv/bin/python -m gateway check --local"]
    assert service["ConditionPathExists"] == ["!/etc/gateway/migrate"]
    for name in ("gateway.service", "gateway-config.service"):
        commands = [v for k, values in unit(name).items() if k.startswith("Exec") for v in values]
        assert not any("migrate" in c for c in commands), name
    assert "MIGRATE" not in (FILES / "gateway-config.py").read_text()
    assert not [n for n in load("region")["Resources"] if "Migrate" in n]


def test_migration_instance_runs_migrate_once_and_powers_off():
    migrate = unit("gateway-migrate.service")
    assert migrate["ConditionPathExists"] == ["/etc/gateway/migrate"]
    # as the master user (the boot step's migration-instance environment), then the app's own user
    assert migrate["ExecStart"] == ["/opt/gateway/venv/bin/python -m gateway migrate",
                                    "/opt/gateway/venv/bin/python -m gateway app-user --secret ${DATABASE_APP_SECRET_ARN}"]
    assert migrate["EnvironmentFile"] == unit("gateway.service")["EnvironmentFile"]
    assert migrate["User"] == ["gateway"] and migrate["Type"] == ["oneshot"]
    assert migrate["SuccessAction"] == migrate["FailureAction"] == ["poweroff"]
    deploy = (ROOT / "infra" / "deploy.sh").read_text()
    timeout = int(re.search(r"MIGRATE_TIMEOUT_SECONDS:-(\d+)", deploy)[1])
    assert seconds(migrate["TimeoutStartSec"][0]) < timeout  # the unit gives up before deploy.sh does
    assert "gateway-migrate: done" in migrate["ExecStartPost"][0] and "gateway-migrate: done" in deploy


def test_deploy_migrates_the_writer_once_between_its_stack_and_the_refresh():
    """Instance refresh (https://docs.aws.amazon.com/autoscaling/ec2/userguide/asg-instance-refresh.html)
    replaces instances with the new launch template; the migrations must be in before it starts."""
    out = plan_output()
    steps = [line.split()[:3] for line in out if not line.startswith("  |")]
    migrations = [s for s in steps if s[0] == "migrate"]
    assert [s[1] for s in migrations] == [PRIMARY]
    index = steps.index(migrations[0])
    assert steps.index(["deploy", PRIMARY, "gateway-prod-region"]) < index
    assert index < steps.index(["instance-refresh", PRIMARY, f"<{PRIMARY}:region.AutoScalingGroupName>"])


def test_migration_user_data_is_the_launch_templates_plus_the_flag():
    out = plan_output()
    start = next(i for i, line in enumerate(out) if line.startswith("migrate "))
    user_data = [line.removeprefix("  | ") for line in out[start + 1:] if line.startswith("  | ")]
    template = only(load("region"), "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"]
    expected = template["Fn::Base64"]["Fn::Sub"].replace("${EnvName}", "prod").replace("${AWS::Region}", PRIMARY)
    assert user_data == expected.splitlines() + ["touch /etc/gateway/migrate"]


def plan_output() -> list[str]:
    return subprocess.run(["bash", str(ROOT / "infra" / "deploy.sh"), "--plan"], env=PLAN_ENV,
                          capture_output=True, text=True, check=True).stdout.splitlines()


# --- JWKS in each region --------------------------------------------------------------------------

def test_each_region_has_its_jwks_copy_readable_by_its_instances(templates):
    """GetParametersByPath without Recursive reads one level
    (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParametersByPath.html),
    so the JWKS, one level down, is not passed through as a variable by the boot step; the
    instances read it by name, and only the refresh function may write it."""
    region = templates["region"]
    pointer = region["Resources"]["ParamJwksParameter"]["Properties"]
    assert pointer["Name"] == {"Fn::Sub": "/gateway/${EnvName}/AUTH_JWKS_PARAMETER"}
    name = pointer["Value"]["Fn::Sub"]
    assert name.startswith("/gateway/${EnvName}/") and name.count("/") == 4
    assert region["Outputs"]["JwksParameterName"]["Value"] == {"Fn::Sub": name}
    statements = {s["Sid"]: s for p in region["Resources"]["InstanceRole"]["Properties"]["Policies"]
                  for s in p["PolicyDocument"]["Statement"]}
    assert "ssm:GetParameter" in statements["BootParameters"]["Action"]
    assert {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/gateway/${EnvName}/*"} \
        in statements["BootParameters"]["Resource"]
    assert not any("PutParameter" in str(s["Action"]) for s in statements.values())
    (writer,) = [s for p in region["Resources"]["JwksRefreshRole"]["Properties"]["Policies"]
                 for s in p["PolicyDocument"]["Statement"] if "ssm:PutParameter" in s["Action"]]
    assert writer["Resource"]["Fn::Sub"].endswith(":parameter" + name)
    assert [line.split()[1] for line in plan_output() if line.startswith("jwks ")] == [PRIMARY, STANDBY]


@pytest.fixture
def refresh(monkeypatch):
    """The refresh function's inline source, as CloudFormation substitutes it, loaded as a module."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", STANDBY)
    source = load("region")["Resources"]["JwksRefresh"]["Properties"]["Code"]["ZipFile"]["Fn::Sub"]
    for variable, value in {"CognitoRegion": PRIMARY, "UserPoolId": f"{PRIMARY}_pool", "EnvName": "prod"}.items():
        source = source.replace("${%s}" % variable, value)
    assert "${" not in source
    namespace: dict = {}
    exec(compile(source, "JwksRefresh", "exec"), namespace)
    assert namespace["URL"] == f"https://cognito-idp.{PRIMARY}.amazonaws.com/{PRIMARY}_pool/.well-known/jwks.json"
    assert namespace["NAME"] == "/gateway/prod/jwks/cognito"
    with mock_aws():
        yield namespace


def serve_jwks(server, body: bytes) -> str:
    class Jwks(Api):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

    server.RequestHandlerClass = Jwks
    return f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"


def test_refresh_copies_the_jwks_and_keeps_the_last_good_copy(refresh, server):
    """Verifying a JSON web token (https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-tokens-verifying-a-jwt.html):
    Cognito might rotate a pool's signing keys, so the copy is refreshed, not written once. An
    unreachable or empty answer leaves the last good copy in place."""
    ssm = boto3.client("ssm", region_name=STANDBY)
    first = json.dumps({"keys": [{"kid": "a", "kty": "RSA", "n": "x", "e": "AQAB"}]}).encode()
    refresh["URL"] = serve_jwks(server, first)
    assert refresh["handler"]({}, None) == {"kids": ["a"], "updated": True}
    assert refresh["handler"]({}, None) == {"kids": ["a"], "updated": False}
    rotated = json.dumps({"keys": [{"kid": "a", "kty": "RSA", "n": "x", "e": "AQAB"},
                                   {"kid": "b", "kty": "RSA", "n": "y", "e": "AQAB"}]}).encode()
    serve_jwks(server, rotated)
    assert refresh["handler"]({}, None) == {"kids": ["a", "b"], "updated": True}
    serve_jwks(server, b'{"keys": []}')
    with pytest.raises(ValueError):
        refresh["handler"]({}, None)
    refresh["URL"] = "http://127.0.0.1:9/.well-known/jwks.json"
    with pytest.raises(OSError):
        refresh["handler"]({}, None)
    assert ssm.get_parameter(Name="/gateway/prod/jwks/cognito")["Parameter"]["Value"] == rotated.decode()


def test_boot_step_does_not_pass_the_jwks_through(boot_config):
    with mock_aws():
        ssm = boto3.client("ssm", region_name=PRIMARY)
        ssm.put_parameter(Name="/gateway/t/AUTH_JWKS_PARAMETER", Value="/gateway/t/jwks/cognito", Type="String")
        ssm.put_parameter(Name="/gateway/t/jwks/cognito", Value='{"keys": []}', Type="String")
        assert boot_config.fetch_parameters(ssm, "/gateway/t/") == {"AUTH_JWKS_PARAMETER": "/gateway/t/jwks/cognito"}


# --- alarms, metric filters, dashboard --------------------------------------------------------------

ALARMS = {  # (namespace, metric) -> the dimension names the alarm must name
    ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"): {"LoadBalancer"},
    ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"): {"LoadBalancer"},
    ("AWS/ApplicationELB", "UnHealthyHostCount"): {"TargetGroup", "LoadBalancer"},
    ("AWS/ApiGateway", "5xx"): {"ApiId"},
    ("AWS/ApiGateway", "Latency"): {"ApiId"},
    ("AWS/RDS", "ReplicaLag"): {"DBInstanceIdentifier"},
    ("AWS/RDS", "CPUUtilization"): {"DBInstanceIdentifier"},
    ("AWS/RDS", "FreeStorageSpace"): {"DBInstanceIdentifier"},
    ("AWS/RDS", "DatabaseConnections"): {"DBInstanceIdentifier"},
    ("AWS/ElastiCache", "Evictions"): {"CacheClusterId"},
    ("AWS/ElastiCache", "CPUCreditBalance"): {"CacheClusterId"},
    ("AWS/Lambda", "Errors"): {"FunctionName"},
}


def alarms(template: dict) -> dict[tuple[str, str], dict]:
    found = {}
    for name, r in resources(template, "AWS::CloudWatch::Alarm").items():
        p = r["Properties"]
        if "MetricName" in p:
            found[(p["Namespace"], p["MetricName"])] = {**p, "Condition": r.get("Condition"), "Name": name}
    return found


def test_every_listed_metric_has_an_alarm_on_the_topic(templates):
    """Amazon API Gateway HTTP API metrics (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html:
    5xx, Latency, dimension ApiId), Application Load Balancer metrics
    (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html),
    Amazon RDS metrics (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-metrics.html),
    ElastiCache host-level metrics (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/CacheMetrics.HostLevel.html)."""
    found = alarms(templates["monitoring"])
    assert set(ALARMS) <= set(found)
    for key, dimensions in ALARMS.items():
        alarm = found[key]
        assert {d["Name"] for d in alarm["Dimensions"]} == dimensions, key
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], key
    assert found[("AWS/ApiGateway", "Latency")]["ExtendedStatistic"] == "p99"
    assert found[("AWS/RDS", "ReplicaLag")]["Condition"] == "IsStandby"
    assert found[("AWS/ElastiCache", "CPUCreditBalance")]["Condition"] == "BurstableCache"


def test_app_5xx_rate_alarm_reads_the_metric_filters(templates):
    t = templates["monitoring"]
    (rate,) = [r["Properties"] for r in resources(t, "AWS::CloudWatch::Alarm").values() if "Metrics" in r["Properties"]]
    stats = {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in rate["Metrics"] if "MetricStat" in m}
    assert stats == {"errors": "Errors5xx", "requests": "Requests"}
    (expression,) = [m for m in rate["Metrics"] if m.get("ReturnData")]
    assert "errors / requests" in expression["Expression"]
    published = {f["Properties"]["MetricTransformations"][0]["MetricName"]
                 for f in resources(t, "AWS::Logs::MetricFilter").values()}
    assert set(stats.values()) <= published


@pytest.mark.parametrize("node_type, burstable", [("cache.t3.medium", True), ("cache.t4g.small", True),
                                                   ("cache.t2.micro", True), ("cache.m5.large", False),
                                                   ("cache.r7g.large", False)])
def test_cpu_credit_alarm_only_for_burstable_nodes(templates, node_type, burstable):
    """ElastiCache host-level metrics
    (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/CacheMetrics.HostLevel.html):
    CPUCreditBalance exists for T2, T3 and T4g nodes only."""
    (condition,) = templates["monitoring"]["Conditions"]["BurstableCache"].values()
    family = node_type.split(".")[1]
    assert any(c["Fn::Equals"][1] == family for c in condition) == burstable
    region_default = templates["region"]["Parameters"]["CacheNodeType"]["Default"]
    assert templates["monitoring"]["Parameters"]["CacheNodeType"]["Default"] == region_default


def test_database_alarms_watch_the_instance_of_their_region(templates):
    ids = {templates[name]["Resources"][res]["Properties"]["DBInstanceIdentifier"]["Fn::Sub"]
           for name, res in (("database", "Database"), ("database-replica", "Replica"))}
    cpu = alarms(templates["monitoring"])[("AWS/RDS", "CPUUtilization")]
    (dimension,) = cpu["Dimensions"]
    _, standby, primary = dimension["Value"]["Fn::If"]
    assert {standby["Fn::Sub"], primary["Fn::Sub"]} == ids


def test_route53_alarms_live_in_us_east_1(templates, plan):
    """Monitoring health checks using CloudWatch
    (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/monitoring-health-checks.html):
    Route 53 health-check metrics are available in US East (N. Virginia) only."""
    found = [r["Properties"] for r in resources(templates["monitoring-global"], "AWS::CloudWatch::Alarm").values()]
    assert {(a["Namespace"], a["MetricName"]) for a in found} == {("AWS/Route53", "HealthCheckStatus")}
    assert {a["Dimensions"][0]["Value"]["Ref"] for a in found} == {"PrimaryHealthCheckId", "StandbyHealthCheckId"}
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in found)
    assert [region for region, name, _ in plan if name == "monitoring-global"] == ["us-east-1"]
    (params,) = [p for _, name, p in plan if name == "monitoring-global"]
    assert params["PrimaryHealthCheckId"] == "<us-east-1:global.PrimaryHealthCheckId>"
    assert params["StandbyHealthCheckId"] == "<us-east-1:global.StandbyHealthCheckId>"
    assert [region for region, name, _ in plan if name == "monitoring"] == [PRIMARY, STANDBY]


@pytest.mark.parametrize("name", ["monitoring", "monitoring-global"])
def test_alarm_topic_uses_a_key_cloudwatch_may_use(templates, name):
    """Encryption at rest, AWS service event sources
    (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services):
    CloudWatch publishes to an encrypted topic only with a customer managed key whose policy allows
    it kms:Decrypt and kms:GenerateDataKey*."""
    t = templates[name]
    topic = only(t, "AWS::SNS::Topic")
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmKey"}
    key = t["Resources"]["AlarmKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    (grant,) = [s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert set(grant["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_metric_filters_keep_within_cloudwatch_logs_limits(templates):
    """PutMetricFilter (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutMetricFilter.html):
    at most 100 filters per log group; a filter is disabled after 1,000 distinct dimension values in
    an hour, so dimensions come from bounded fields only (the route template and the method, never
    the request id, the address or the subject). MetricTransformation
    (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_MetricTransformation.html):
    at most three dimensions, and no default value with dimensions."""
    filters = [f["Properties"] for f in resources(templates["monitoring"], "AWS::Logs::MetricFilter").values()]
    assert {f["LogGroupName"]["Fn::Sub"] for f in filters} == {"/gateway/${EnvName}/app"}
    assert templates["region"]["Resources"]["AppLogGroup"]["Properties"]["LogGroupName"] == {"Fn::Sub": "/gateway/${EnvName}/app"}
    assert len(filters) <= 100
    for f in filters:
        (transformation,) = f["MetricTransformations"]
        dimensions = transformation.get("Dimensions", [])
        assert len(dimensions) <= 3
        assert {d["Value"] for d in dimensions} <= {"$.route", "$.method"}
        assert not (dimensions and "DefaultValue" in transformation)
        assert not transformation["MetricNamespace"]["Fn::Sub"].startswith("AWS/")


def test_access_filters_name_fields_of_the_apps_access_line(templates, capfd):
    """The filters read the line the app writes (gateway/accesslog.py), field by field."""
    log = AccessLog()
    log.write(AccessLog.request_fields("GET", "/v1/items/{id}"), 503, 12.5, "r-1", None, "10.0.0.1",
              "Root=1-5759e988-bd862e3fe1be46a994272793")
    line = json.loads(capfd.readouterr().out)
    for f in resources(templates["monitoring"], "AWS::Logs::MetricFilter").values():
        pattern = f["Properties"]["FilterPattern"]
        if '"access"' not in pattern:
            continue
        fields = set(re.findall(r"\$\.(\w+)", pattern + json.dumps(f["Properties"]["MetricTransformations"])))
        assert fields <= set(line), (pattern, fields - set(line))
    assert line["logger"] == "access" and line["route"].startswith("/") and line["status"] >= 500


def test_one_dashboard_per_region_shows_every_alarm(templates):
    """AWS::CloudWatch::Dashboard (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudwatch-dashboard.html):
    dashboards are global to the account, so each region's name carries the region; the name allows
    letters, digits, - and _ only."""
    t = templates["monitoring"]
    dashboard = only(t, "AWS::CloudWatch::Dashboard")
    assert "${AWS::Region}" in dashboard["DashboardName"]["Fn::Sub"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", dashboard["DashboardName"]["Fn::Sub"].replace("${EnvName}", "prod")
                        .replace("${AWS::Region}", PRIMARY))
    body, variables = dashboard["DashboardBody"]["Fn::Sub"]
    alarm_refs = variables["AlarmArns"]["Fn::Join"][1]
    filled = re.sub(r"\$\{[^}]+\}", "x", body.replace("${AlarmArns}", ", ".join(['"arn"'] * len(alarm_refs))))
    widgets = json.loads(filled)["widgets"]
    metric_widgets = [w["properties"] for w in widgets if w["type"] == "metric"]
    assert all(w["region"] == "x" for w in metric_widgets)
    # Every row spelled out: "." and "..." copy the previous row, which after an expression is no metric.
    for row in (row for w in metric_widgets for row in w["metrics"]):
        assert "expression" in row[0] or (row[0] not in (".", "...") and "." not in row[1:3]), row
    named = {re.search(r"\$\{(\w+)\.Arn\}", ref["Fn::Sub"])[1] for ref in alarm_refs}
    unconditional = {n for n, r in resources(t, "AWS::CloudWatch::Alarm").items() if "Condition" not in r}
    assert named == unconditional


# --- the liveness report, for real ----------------------------------------------------------------

class Api(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status)
        self.end_headers()

    def do_PUT(self):  # IMDSv2's token
        assert self.headers["X-aws-ec2-metadata-token-ttl-seconds"]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"token")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


@pytest.fixture
def unit_state(tmp_path, monkeypatch):
    """A stand-in `systemctl` first on PATH, answering `is-active` with the state the test sets."""
    state = tmp_path / "state"
    state.write_text("failed\n")
    systemctl = tmp_path / "bin" / "systemctl"
    systemctl.parent.mkdir()
    systemctl.write_text(f'#!/bin/sh\n[ "$1 $2" = "is-active gateway.service" ] && cat {state}\n')
    systemctl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{systemctl.parent}:{os.environ['PATH']}")
    return state


@pytest.fixture
def group(monkeypatch):
    """A moto Auto Scaling group with one instance, whose id the metadata stand-in answers."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_REGION", PRIMARY)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=PRIMARY)
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        ec2.create_launch_template(LaunchTemplateName="gateway", LaunchTemplateData={"ImageId": image})
        autoscaling = boto3.client("autoscaling", region_name=PRIMARY)
        autoscaling.create_auto_scaling_group(AutoScalingGroupName="gw", MinSize=1, MaxSize=1,
                                              LaunchTemplate={"LaunchTemplateName": "gateway"},
                                              AvailabilityZones=[f"{PRIMARY}a"])
        (instance,) = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]
        yield autoscaling, instance["InstanceId"]


def health(autoscaling, instance_id: str) -> str:
    (instance,) = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    return instance["HealthStatus"].upper()  # AWS answers HEALTHY or UNHEALTHY; moto capitalises


def metadata_for(server, instance_id: str, liveness, monkeypatch):
    class Metadata(Api):
        def do_GET(self):
            assert self.headers["X-aws-ec2-metadata-token"] == "token"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(instance_id.encode())

    server.RequestHandlerClass = Metadata
    monkeypatch.setattr(liveness, "METADATA", f"http://127.0.0.1:{server.server_address[1]}")


def test_a_serving_process_leaves_the_instance_healthy(liveness, group, server, unit_state):
    autoscaling, instance_id = group
    assert liveness.main(f"http://127.0.0.1:{server.server_address[1]}/health/live", pause=0) == 0
    assert health(autoscaling, instance_id) == "HEALTHY"


@pytest.mark.parametrize("answer", [503, None])
def test_a_process_that_does_not_serve_is_reported_unhealthy(liveness, group, server, monkeypatch, unit_state,
                                                              answer):
    """Set up a custom health check
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/set-up-a-custom-health-check.html):
    SetInstanceHealth Unhealthy makes the group replace the instance; by default it respects the
    grace period. A 503 (the app's own verdict that it cannot serve) and a refused connection count."""
    autoscaling, instance_id = group
    calls = []
    real = liveness.boto3.client

    def client(*args, **kwargs):
        made = real(*args, **kwargs)
        original = made.set_instance_health
        made.set_instance_health = lambda **kw: (calls.append(kw), original(**kw))[1]
        return made

    monkeypatch.setattr(liveness.boto3, "client", client)
    metadata_for(server, instance_id, liveness, monkeypatch)
    if answer is None:
        url = "http://127.0.0.1:9/health/live"  # discard port: nothing listens
    else:
        api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Down", (Api,), {"status": answer}))
        threading.Thread(target=api.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{api.server_address[1]}/health/live"
    try:
        assert liveness.main(url, pause=0) == 1
    finally:
        if answer is not None:
            api.shutdown()
    assert calls == [{"InstanceId": instance_id, "HealthStatus": "Unhealthy", "ShouldRespectGracePeriod": True}]
    assert health(autoscaling, instance_id) == "UNHEALTHY"


@pytest.mark.parametrize("state", ["activating", "deactivating", "reloading"])
def test_a_starting_or_stopping_api_is_not_reported(liveness, group, unit_state, state):
    """An operator's `systemctl restart gateway` leaves the port closed for a while; systemd's own
    start and stop timeouts bound that, so the report waits for a settled state."""
    autoscaling, instance_id = group
    unit_state.write_text(state + "\n")
    assert liveness.main("http://127.0.0.1:9/health/live", pause=0) == 0
    assert health(autoscaling, instance_id) == "HEALTHY"
