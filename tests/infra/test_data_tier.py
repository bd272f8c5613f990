"""The data tier against the limits AWS documents and no linter knows: one test per rule, each
naming the page it comes from. The templates are read as data, the deploy order from
`infra/deploy.sh --plan` and the outage steps from docs/runbook-failover.md."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.infra.test_cloudformation import PRIMARY, STANDBY, TEMPLATES, default, load, plan, resources  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "runbook-failover.md"
DATABASES = ["database", "database-replica"]


def instance(name: str) -> dict:
    (db,) = resources(load(name), "AWS::RDS::DBInstance").values()
    return db["Properties"]


def parameter_group(name: str) -> dict:
    (group,) = resources(load(name), "AWS::RDS::DBParameterGroup").values()
    return group["Properties"]


def steps(plan, template):
    return [(region, params) for region, name, params in plan if name == template]


def test_no_read_replica_source_has_an_rds_managed_master_password(plan):
    """RDS User Guide, "Password management with Amazon RDS and AWS Secrets Manager",
    limitations (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-secrets-manager.html):
    creating a read replica is not supported when the source manages its master password in
    Secrets Manager (every engine but SQL Server). The replica's source is database.yaml's
    instance, as deploy.sh wires it."""
    ((_, params),) = steps(plan, "database-replica")
    assert params["SourceDatabaseArn"] == f"<{PRIMARY}:database.DatabaseArn>"
    source = instance("database")
    assert source.get("ManageMasterUserPassword") in (None, False)
    assert "ManageMasterUserPassword" not in instance("database-replica")


def test_master_password_is_the_stacks_generated_secret_within_rds_rules():
    """CreateDBInstance, MasterUserPassword
    (https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html): RDS for
    MySQL takes 8 to 41 printable ASCII characters except "/", '"' and "@"; and "Retrieve a
    secret in an AWS CloudFormation resource"
    (https://docs.aws.amazon.com/secretsmanager/latest/userguide/cfn-example_reference-secret.html):
    the instance reads it through a dynamic reference, never a parameter."""
    t = load("database")
    db = instance("database")
    assert db["MasterUsername"] == {"Fn::Sub": "{{resolve:secretsmanager:${MasterSecret}:SecretString:username}}"}
    assert db["MasterUserPassword"] == {"Fn::Sub": "{{resolve:secretsmanager:${MasterSecret}:SecretString:password}}"}
    for secret in resources(t, "AWS::SecretsManager::Secret").values():
        generate = secret["Properties"]["GenerateSecretString"]
        assert generate["GenerateStringKey"] == "password"
        assert 8 <= generate.get("PasswordLength", 32) <= 41
        assert {"/", '"', "@"} <= set(generate["ExcludeCharacters"])


def test_both_secrets_are_replicated_and_each_region_reads_its_own_copy(plan):
    """Secrets Manager User Guide, "Replicate an AWS Secrets Manager secret to other AWS Regions"
    (https://docs.aws.amazon.com/secretsmanager/latest/userguide/create-manage-multi-region-secrets.html):
    a replica's ARN is the primary's but for the Region, and replicas are read-only copies."""
    secrets = resources(load("database"), "AWS::SecretsManager::Secret")
    assert set(secrets) == {"MasterSecret", "AppSecret"}
    for secret in secrets.values():
        (replica,) = secret["Properties"]["ReplicaRegions"]
        assert replica == {"Region": {"Ref": "StandbyRegion"}, "KmsKeyId": {"Ref": "StandbyKeyArn"}}
    (database,) = steps(plan, "database")
    assert database == (PRIMARY, {**database[1], "StandbyRegion": STANDBY, "StandbyKeyArn": f"<{STANDBY}:network.LogKeyArn>"})
    regions = dict(steps(plan, "region"))
    for key, output in (("DatabaseSecretArn", "AppSecretArn"), ("DatabaseMigratorSecretArn", "MasterSecretArn")):
        assert regions[PRIMARY][key] == f"<{PRIMARY}:database.{output}>"
        assert regions[STANDBY][key] == f"<{PRIMARY}:database.{output}@{STANDBY}>"


def test_replica_secret_arn_is_the_primary_arn_in_the_other_region():
    """The same page (create-manage-multi-region-secrets.html): "The ARN for a replicated secret is
    the same as the primary secret except for the Region". deploy.sh derives it that way."""
    script = ROOT / "infra" / "deploy.sh"
    body = script.read_text()
    function = body[body.index("replica_arn() {"):body.index("}\n", body.index("replica_arn() {")) + 2]
    arn = "arn:aws:secretsmanager:ap-southeast-1:123456789012:secret:gateway-prod/database/app-Ab12Cd"
    out = subprocess.run(["bash", "-c", f"plan=false primary=ap-southeast-1\n{function}\nreplica_arn '{arn}' ap-south-1"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == arn.replace(":ap-southeast-1:", ":ap-south-1:")


@pytest.mark.parametrize("name", DATABASES)
def test_mysql_requires_tls(name):
    """RDS User Guide, "Requiring SSL/TLS for all connections to a MySQL DB instance on Amazon RDS"
    (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/mysql-ssl-connections.require-ssl.html):
    for MySQL 8.4 and lower require_secure_transport defaults to 0 (OFF); only a custom parameter
    group set to 1 refuses plaintext. The checkov skip that excused plaintext is gone."""
    assert parameter_group(name)["Parameters"]["require_secure_transport"] == "1"
    (db,) = resources(load(name), "AWS::RDS::DBInstance").values()
    skipped = {s["id"] for s in db.get("Metadata", {}).get("checkov", {}).get("skip", [])}
    assert "CKV2_AWS_69" not in skipped


@pytest.mark.parametrize("name", DATABASES)
def test_mysql_8_4_with_extended_support_declined(name):
    """CreateDBInstance, EngineLifecycleSupport
    (https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html): left
    unset it is open-source-rds-extended-support, which enrols the instance in paid RDS Extended
    Support once its major version leaves standard support (MySQL 8.0 did in 2026); set on the
    replica too, which CloudFormation creates as an instance of its own."""
    db = instance(name)
    assert db["EngineLifecycleSupport"] == "open-source-rds-extended-support-disabled"
    if name == "database":
        assert re.fullmatch(r"8\.4\.\d+", default(load(name), db["EngineVersion"]))


@pytest.mark.parametrize("name", DATABASES)
def test_parameter_group_family_matches_the_engine(name):
    """RDS User Guide, "Parameters for MySQL"
    (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Appendix.MySQL.Parameters.html): the
    DB parameter group families are mysql8.4, mysql8.0 and mysql5.7; an instance takes a group of
    its own major version's family. The replica runs its source's version."""
    version = default(load("database"), instance("database")["EngineVersion"])
    assert parameter_group(name)["Family"] == "mysql" + ".".join(version.split(".")[:2])


# MySQL Server Version Reference, "Option and Variable Changes for MySQL 8.4"
# (https://dev.mysql.com/doc/mysqld-version-reference/en/optvar-changes-8-4.html), removed in 8.4.0
# (a selection), and binlog_format, deprecated since 8.0.34 (ROW, the default, is what RDS uses).
REMOVED_OR_DEPRECATED_IN_8_4 = {
    "admin-ssl", "authentication_fido_rp_id", "avoid_temporal_upgrade", "binlog_format",
    "binlog_transaction_dependency_tracking", "default_authentication_plugin", "have_openssl",
    "have_ssl", "keyring_encrypted_file_data", "keyring_encrypted_file_password",
}
# System variables of MySQL 8.4 that RDS lets a custom group set (Appendix.MySQL.Parameters.html).
SET_IN_8_4 = {"slow_query_log", "long_query_time", "log_output", "require_secure_transport"}


@pytest.mark.parametrize("name", DATABASES)
def test_every_parameter_exists_in_mysql_8_4(name):
    """MySQL 8.4's option and variable changes
    (https://dev.mysql.com/doc/mysqld-version-reference/en/optvar-changes-8-4.html) against the
    group's parameters; RDS refuses a parameter its family does not have."""
    parameters = set(parameter_group(name)["Parameters"])
    assert parameters <= SET_IN_8_4
    assert not parameters & REMOVED_OR_DEPRECATED_IN_8_4


def test_memcached_in_transit_encryption():
    """ElastiCache for Memcached User Guide, "ElastiCache in-transit encryption (TLS)"
    (https://docs.aws.amazon.com/AmazonElastiCache/latest/mem-ug/in-transit-encryption-mc.html)
    and "Amazon ElastiCache for Memcached supports encryption of data in transit" (What's New,
    2022-05-26): Memcached 1.6.12 and later, a cluster in a VPC, TransitEncryptionEnabled set when
    the cluster is created. The app is told to use TLS by CACHE_URL. (1.6 is also what the cache's
    lease needs: memcached's meta set, "Meta Text Protocol", docs/infra.md.)"""
    t = load("region")
    (cache,) = resources(t, "AWS::ElastiCache::CacheCluster").values()
    p = cache["Properties"]
    assert p["Engine"] == "memcached" and p["TransitEncryptionEnabled"] is True
    assert tuple(map(int, str(p["EngineVersion"]).split("."))) >= (1, 6, 12)
    assert p["CacheSubnetGroupName"] and p["VpcSecurityGroupIds"]
    url = t["Resources"]["ParamCacheUrl"]["Properties"]["Value"]["Fn::Sub"]
    assert url.endswith("?tls=verify") and t["Outputs"]["CacheUrl"]["Value"]["Fn::Sub"] == url


def _media_bucket():
    return load("media")["Resources"]["MediaBucket"]["Properties"]


def test_replication_has_versioning_on_both_sides_and_sse_s3(plan):
    """Amazon S3 User Guide, "Requirements and considerations for replication"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-requirements.html): both the
    source and the destination bucket must have versioning enabled, the destination must exist
    first, and the role must be able to read the source and replicate into the destination.
    "Replicating encrypted objects"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-config-for-kms-objects.html):
    SSE-KMS objects need SourceSelectionCriteria and KMS grants; both buckets use SSE-S3."""
    source = _media_bucket()
    replica = load("media-replica")["Resources"]["MediaReplicaBucket"]["Properties"]
    for bucket in (source, replica):
        assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
        (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    (rule,) = source["ReplicationConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["Destination"]["Bucket"] == {"Ref": "ReplicaBucketArn"}
    assert "SourceSelectionCriteria" not in rule
    order = [(region, name) for region, name, _ in plan]
    assert order.index((STANDBY, "media-replica")) < order.index((PRIMARY, "media"))
    (media,) = [params for region, name, params in plan if name == "media"]
    assert media["ReplicaBucketArn"] == f"<{STANDBY}:media-replica.MediaBucketArn>"
    policy = load("media")["Resources"]["ReplicationRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert {"s3:GetReplicationConfiguration", "s3:ListBucket", "s3:GetObjectVersionForReplication",
            "s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"} <= actions


def test_delete_markers_replicate_and_the_replica_runs_its_own_lifecycle():
    """Amazon S3 User Guide, "Replicating delete markers between buckets"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/delete-marker-replication.html): delete
    marker replication is not supported for tag-based rules, and delete markers that an S3
    Lifecycle expiration rule adds are not replicated, so the replica expires the same objects."""
    (rule,) = _media_bucket()["ReplicationConfiguration"]["Rules"]
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    assert "Tag" not in rule["Filter"] and "And" not in rule["Filter"]
    replica = load("media-replica")["Resources"]["MediaReplicaBucket"]["Properties"]
    ids = lambda bucket: {r["Id"]: {k: v for k, v in r.items() if k != "ExpirationInDays"}
                          for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert ids(replica) == ids(_media_bucket())


def test_origin_group_fails_over_read_requests_to_the_replica():
    """CloudFront Developer Guide, "Optimize high availability with CloudFront origin failover"
    (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/high_availability_origin_failover.html)
    and "Request and response behavior for origin groups"
    (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorOriginGroups.html):
    two origins, failover on 400, 403, 404, 416, 500, 502, 503 or 504 only, and only for GET,
    HEAD and OPTIONS requests, so every behaviour using the group allows no other method."""
    config = resources(load("media"), "AWS::CloudFront::Distribution")["Distribution"]["Properties"]["DistributionConfig"]
    (group,) = config["OriginGroups"]["Items"]
    assert config["OriginGroups"]["Quantity"] == 1
    members = [m["OriginId"] for m in group["Members"]["Items"]]
    assert members == ["media-bucket", "media-replica-bucket"] and group["Members"]["Quantity"] == 2
    codes = group["FailoverCriteria"]["StatusCodes"]
    assert codes["Quantity"] == len(codes["Items"]) and set(codes["Items"]) <= {400, 403, 404, 416, 500, 502, 503, 504}
    assert {500, 502, 503, 504, 403} <= set(codes["Items"])
    origins = {o["Id"]: o for o in config["Origins"]}
    assert set(members) <= set(origins)
    for behaviour in [config["DefaultCacheBehavior"], *config["CacheBehaviors"]]:
        assert behaviour["TargetOriginId"] == group["Id"]
        assert set(behaviour["AllowedMethods"]) <= {"GET", "HEAD", "OPTIONS"}


def test_both_buckets_are_read_through_origin_access_control_by_this_distribution_only(plan):
    """CloudFront Developer Guide, "Restrict access to an Amazon S3 origin"
    (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html):
    with OAC each bucket's policy allows the cloudfront.amazonaws.com principal on the condition
    AWS:SourceArn = the distribution. The replica bucket learns it on deploy.sh's second pass."""
    config = resources(load("media"), "AWS::CloudFront::Distribution")["Distribution"]["Properties"]["DistributionConfig"]
    for origin in config["Origins"]:
        assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["OriginAccessControl", "Id"]}
        assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    policy = load("media-replica")["Resources"]["MediaReplicaBucketPolicy"]["Properties"]["PolicyDocument"]
    (read,) = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"} and read["Action"] == "s3:GetObject"
    assert read["Condition"] == {"StringEquals": {"AWS:SourceArn": {"Ref": "DistributionArn"}}}
    passes = [params for region, name, params in plan if name == "media-replica"]
    assert [p.get("DistributionArn") for p in passes] == [None, f"<{PRIMARY}:media.DistributionArn>"]


def test_each_region_signs_for_the_bucket_in_its_region(plan):
    """Amazon S3 User Guide, "Replicating objects within and across Regions"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication.html): the replica is a
    bucket of its own in the standby Region, reachable while the source Region is not; the
    standby region's app uploads to and presigns for it."""
    regions = dict(steps(plan, "region"))
    assert regions[PRIMARY]["MediaBucketName"] == f"<{PRIMARY}:media.MediaBucketName>"
    assert regions[PRIMARY]["MediaBucketRegion"] == PRIMARY
    assert regions[STANDBY]["MediaBucketName"] == f"<{STANDBY}:media-replica.MediaBucketName>"
    assert regions[STANDBY]["MediaBucketRegion"] == STANDBY


def _global():
    t = load("global")
    checks = {name: r["Properties"]["HealthCheckConfig"] for name, r in resources(t, "AWS::Route53::HealthCheck").items()}
    records = {r["Properties"]["Failover"]: r["Properties"] for r in resources(t, "AWS::Route53::RecordSet").values()}
    return t, checks, records


def _switch_alarm(t, check: dict) -> dict:
    """The alarm a CLOUDWATCH_METRIC health check reads."""
    return t["Resources"][check["AlarmIdentifier"]["Name"]["Ref"]]["Properties"]


def test_primary_record_needs_its_endpoint_healthy_and_its_switch_not_pulled():
    """Route 53 Developer Guide, "Values that you specify when you create or update health checks",
    calculated health checks
    (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/health-checks-creating-values.html):
    up to 256 child health checks, no calculated health check as a child, and healthy when at
    least HealthThreshold children are (a threshold above the number of children is always
    unhealthy, 0 always healthy). AND over the endpoint and the switch is a threshold equal to the
    number of children, so a dead region fails over by itself and a pulled switch takes it out."""
    _, checks, records = _global()
    calculated = checks[records["PRIMARY"]["HealthCheckId"]["Ref"]]
    assert calculated["Type"] == "CALCULATED"
    children = [checks[child["Ref"]] for child in calculated["ChildHealthChecks"]]
    assert calculated["HealthThreshold"] == len(children) and 0 < len(children) <= 256
    assert sorted(child["Type"] for child in children) == ["CLOUDWATCH_METRIC", "HTTPS"]
    (endpoint,) = [child for child in children if child["Type"] == "HTTPS"]
    assert endpoint["FullyQualifiedDomainName"] == {"Ref": "PrimaryApiEndpointHost"}
    assert endpoint["ResourcePath"] == "/health/ready"
    assert not any(child.get("Inverted") for child in [calculated, *children])


# RDS User Guide, "Failing over a Multi-AZ DB instance for Amazon RDS": "typically 60-120 seconds".
MULTI_AZ_FAILOVER_SECONDS = 120


def test_a_multi_az_failover_does_not_move_the_api_to_the_standby():
    """RDS User Guide, "Failing over a Multi-AZ DB instance for Amazon RDS"
    (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Concepts.MultiAZ.Failover.html): failover
    times are typically 60-120 seconds, during which the region's /health/ready fails (the database
    check is critical). Route 53 Developer Guide, "Values that you specify when you create or update
    health checks" (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/health-checks-creating-values.html)
    and API Reference "HealthCheckConfig"
    (https://docs.aws.amazon.com/Route53/latest/APIReference/API_HealthCheckConfig.html): a checker
    calls the endpoint unhealthy after FailureThreshold (1-10) consecutive failures, RequestInterval
    (10 or 30) seconds apart. The earliest verdict, (FailureThreshold - 1) x RequestInterval after
    the first failed probe, must come after the longest typical failover, or the primary record
    fails over to the standby's read-only database."""
    _, checks, records = _global()
    calculated = checks[records["PRIMARY"]["HealthCheckId"]["Ref"]]
    endpoints = [checks[c["Ref"]] for c in calculated["ChildHealthChecks"] if checks[c["Ref"]]["Type"] == "HTTPS"]
    assert endpoints
    for endpoint in endpoints:
        assert 1 <= endpoint["FailureThreshold"] <= 10 and endpoint["RequestInterval"] in (10, 30)
        assert (endpoint["FailureThreshold"] - 1) * endpoint["RequestInterval"] > MULTI_AZ_FAILOVER_SECONDS


def test_secondary_record_follows_only_its_switch():
    """Route 53 API Reference, "ResourceRecordSet", Failover
    (https://docs.aws.amazon.com/Route53/latest/APIReference/API_ResourceRecordSet.html; the same
    text in the CloudFormation reference of AWS::Route53::RecordSet): when the secondary record is
    unhealthy, Route 53 answers with the primary record regardless of the primary's health. After
    a promotion the primary region's database is stale, so a failing standby endpoint must not
    hand traffic back to it: the secondary record carries its switch alone."""
    t, checks, records = _global()
    switch = checks[records["SECONDARY"]["HealthCheckId"]["Ref"]]
    assert switch["Type"] == "CLOUDWATCH_METRIC"
    assert _switch_alarm(t, switch)["Dimensions"][1] == {"Name": "SetIdentifier", "Value": records["SECONDARY"]["SetIdentifier"]}


# Route 53 API Reference, "AlarmIdentifier", Region: the regions whose alarms health checks read.
ALARM_REGIONS = {
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "eu-central-1", "eu-central-2",
    "eu-west-1", "eu-west-2", "eu-west-3", "ap-east-1", "me-south-1", "me-central-1", "ap-south-1",
    "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-northeast-1", "ap-northeast-2",
    "ap-northeast-3",
}


def test_switch_alarms_are_alarms_route53_can_read(plan):
    """Route 53 API Reference, "AlarmIdentifier"
    (https://docs.aws.amazon.com/Route53/latest/APIReference/API_AlarmIdentifier.html): the alarm
    is named with the Region it was created in, one of a listed set; standard-resolution metrics
    only, statistics Average, Minimum, Maximum, Sum or SampleCount. "Types of Amazon Route 53
    health checks" (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/health-checks-types.html):
    no "M out of N" alarms, no metric math, an alarm of the same account. The alarms live with
    this stack in us-east-1, a region the switch never fails away from."""
    t, checks, records = _global()
    (region,) = [region for region, name, _ in plan if name == "global"]
    assert region in ALARM_REGIONS and region not in (PRIMARY, STANDBY)
    switches = [c for c in checks.values() if c["Type"] == "CLOUDWATCH_METRIC"]
    assert len(switches) == 2 == len(resources(t, "AWS::CloudWatch::Alarm"))
    for switch in switches:
        assert switch["AlarmIdentifier"]["Region"] == {"Ref": "AWS::Region"}
        alarm = _switch_alarm(t, switch)
        assert alarm["Statistic"] in {"Average", "Minimum", "Maximum", "Sum", "SampleCount"}
        assert "ExtendedStatistic" not in alarm and "Metrics" not in alarm
        assert alarm["Period"] % 60 == 0
        assert alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"]) == alarm["EvaluationPeriods"]
        assert alarm["Namespace"] == "Gateway/Failover" and alarm["MetricName"] == "RecordOut"
        assert alarm["Dimensions"][0] == {"Name": "Name", "Value": {"Fn::Sub": "api.${DomainName}"}}


def test_switch_without_data_is_not_pulled_and_a_pulled_switch_stays_pulled():
    """Route 53 Developer Guide, "Values that you specify when you create or update health checks",
    monitoring a CloudWatch alarm, and "How Amazon Route 53 determines whether a health check is
    healthy" (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html):
    Route 53 reads the metric's data stream, not the alarm state; with insufficient data a
    LastKnownStatus health check keeps its last status, and a new one with none is healthy. So no
    datapoint ever means the switch is not pulled, a 1 pulls it until a 0 clears it, and the
    alarm neither breaches nor clears on missing data (CloudWatch, PutMetricAlarm, TreatMissingData:
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html)."""
    t, checks, _ = _global()
    switches = [c for c in checks.values() if c["Type"] == "CLOUDWATCH_METRIC"]
    assert len(switches) == 2
    for switch in switches:
        assert switch["InsufficientDataHealthStatus"] == "LastKnownStatus"
        alarm = _switch_alarm(t, switch)
        assert alarm["TreatMissingData"] in ("ignore", "missing")
        assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
            "Maximum", "GreaterThanOrEqualToThreshold", 1)


def test_no_route53_arc_resource_remains():
    """ARC Developer Guide, "Creating routing control components in ARC"
    (https://docs.aws.amazon.com/r53recovery/latest/dg/routing-control.create.html): a cluster is
    billed by the hour whether or not it is used, about $1,825 a month here; the switch above
    costs cents. Nothing in the templates, deploy.sh or the runbook uses ARC any more."""
    for path in TEMPLATES.glob("*.yaml"):
        t = load(path.stem)
        assert not [r for r in t["Resources"].values() if r["Type"].startswith("AWS::Route53RecoveryControl::")], path
        assert "RECOVERY_CONTROL" not in path.read_text(), path
    for path in (ROOT / "infra" / "deploy.sh", RUNBOOK):
        assert "route53-recovery" not in path.read_text(), path


def _section(title: str) -> str:
    text = RUNBOOK.read_text()
    start = text.index(f"\n{title}\n")
    level = title.split(" ")[0]
    ends = [m.start() for m in re.finditer(r"\n#{1,%d} " % len(level), text) if m.start() > start]
    return text[start:ends[0] if ends else len(text)]


def _aws_commands(markdown: str) -> list[list[str]]:
    """Every `aws ...` command in the section's code blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"<[^>]*>", "X", line).strip()
            if line.startswith("aws "):
                commands.append(shlex.split(line))
    return commands


# Data-plane calls (the service's core function, up while its control plane is not) and the
# standby region's own control plane, which a primary-region outage leaves up.
DATA_PLANE = {("cloudwatch", "put-metric-data"), ("cloudwatch", "get-metric-statistics")}
STANDBY_CONTROL_PLANE = {("rds", "promote-read-replica"), ("rds", "wait"), ("rds", "modify-db-instance")}


def _switch_commands(commands: list[list[str]], plan) -> list[tuple[str, str]]:
    """[(set identifier, value)] of the section's put-metric-data calls, each checked against the
    switch alarms: the global stack's region, the alarm's namespace, metric and dimensions, and
    standard resolution (Route 53 reads no high-resolution metric: AlarmIdentifier, as above)."""
    (region,) = [region for region, name, _ in plan if name == "global"]
    t = load("global")
    alarms = {a["Properties"]["Dimensions"][1]["Value"]: a["Properties"] for a in resources(t, "AWS::CloudWatch::Alarm").values()}
    switched = []
    for command in [c for c in commands if c[1:3] == ["cloudwatch", "put-metric-data"]]:
        option = lambda name: command[command.index(name) + 1]
        dimensions = dict(d.split("=", 1) for d in option("--dimensions").split(","))
        alarm = alarms[dimensions["SetIdentifier"]]
        assert option("--region") == region, command
        assert (option("--namespace"), option("--metric-name")) == (alarm["Namespace"], alarm["MetricName"]), command
        # api.<domain>, its placeholder read as X
        assert set(dimensions) == {d["Name"] for d in alarm["Dimensions"]} and dimensions["Name"] == "api.X", command
        assert "--storage-resolution" not in command, command
        switched.append((dimensions["SetIdentifier"], option("--value")))
    return switched


def test_runbook_outage_steps_are_data_plane_actions_only(plan):
    """"Creating Disaster Recovery Mechanisms Using Amazon Route 53" (AWS Networking & Content
    Delivery Blog, https://aws.amazon.com/blogs/networking-and-content-delivery/creating-disaster-recovery-mechanisms-using-amazon-route-53/)
    and "AWS Fault Isolation Boundaries", "Global services"
    (https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/global-services.html):
    during an outage rely on data planes, not on control planes (CloudFormation, Route 53's API in
    us-east-1, ARC's configuration in us-west-2). The switch is a datapoint (CloudWatch
    PutMetricData); promoting the replica is RDS's control plane in the standby region, which is
    up. The switch is pulled before the promotion, so traffic never returns to the stale region."""
    commands = _aws_commands(_section("### During the outage: data-plane actions only"))
    assert commands
    for command in commands:
        service, operation = command[1], command[2]
        region = command[command.index("--region") + 1]
        assert region != PRIMARY, command
        assert service != "route53" and not service.startswith("route53-recovery"), command
        if (service, operation) in STANDBY_CONTROL_PLANE:
            assert region == STANDBY, command
        else:
            assert (service, operation) in DATA_PLANE, command
    assert _switch_commands(commands, plan) == [("primary", "1")]
    operations = [c[1:3] for c in commands]
    assert operations.index(["cloudwatch", "put-metric-data"]) < operations.index(["rds", "promote-read-replica"])


def test_failback_rebuilds_the_replica_and_nothing_makes_rds_manage_the_password():
    """RDS User Guide, "Password management with Amazon RDS and AWS Secrets Manager"
    (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-secrets-manager.html): a source
    whose password RDS manages cannot get a read replica, so no step may turn that on, and the
    failback creates a replica of the promoted instance."""
    text = RUNBOOK.read_text()
    assert "--manage-master-user-password" not in text
    failback = _aws_commands(_section("## Failing back"))
    (rebuild,) = [c for c in failback if c[1:3] == ["rds", "create-db-instance-read-replica"]]
    assert rebuild[rebuild.index("--region") + 1] == PRIMARY
    assert rebuild[rebuild.index("--source-region") + 1] == STANDBY


def test_failback_clears_the_primary_switch_and_holds_the_standby_out_until_its_replica_is_back(plan):
    """Route 53 API Reference, "ResourceRecordSet", Failover (as above): the primary record answers
    as soon as it is healthy again, and a pulled secondary switch keeps traffic on the primary even
    if the primary fails (both unhealthy: the primary is answered). After the switch back the
    standby region's database is the stale ex-writer until deploy.sh rebuilds its replica."""
    switched = _switch_commands(_aws_commands(_section("## Failing back")), plan)
    assert switched == [("secondary", "1"), ("primary", "0"), ("secondary", "0")]
