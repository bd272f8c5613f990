"""The CloudFormation templates, read as data: the seed's architecture, where each piece runs and
how it is secured. Which template goes to which region comes from `infra/deploy.sh --plan`, the
same script an operator runs, so placement is tested as deployed."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "infra" / "cloudformation"
PRIMARY, STANDBY = "ap-southeast-1", "ap-south-1"
PLAN_ENV = {
    "PATH": "/usr/bin:/bin", "DOMAIN_NAME": "example.com", "HOSTED_ZONE_ID": "Z0000000000000",
    "AMI_ID_PRIMARY": "ami-00000000000000001", "AMI_ID_STANDBY": "ami-00000000000000002",
    "HOSTED_UI_DOMAIN_PREFIX": "example", "CDN_PRIVATE_KEY_FILE": "/nonexistent/key.pem",
}
SSM_NAMES = {
    "GATEWAY_DRAIN_SECONDS", "GATEWAY_TRUSTED_PROXIES", "AUTH_JWKS_PARAMETER", "DATABASE_HOST",
    "DATABASE_PORT", "DATABASE_NAME", "DATABASE_SECRET_ARN", "DATABASE_MIGRATOR_SECRET_ARN", "CACHE_URL",
    "AUTH_COGNITO_REGION",
    "AUTH_COGNITO_USER_POOL_ID", "AUTH_COGNITO_CLIENT_IDS", "MEDIA_BUCKET", "MEDIA_BUCKET_REGION",
    "MEDIA_CDN_URL", "MEDIA_CDN_KEY_PAIR_ID", "MEDIA_CDN_DISTRIBUTION_ID",
}


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, !GetAtt ...) as their long forms."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load(name: str) -> dict:
    return yaml.load((TEMPLATES / f"{name}.yaml").read_text(), Loader=CfnLoader)


@pytest.fixture(scope="module")
def templates() -> dict[str, dict]:
    return {path.stem: load(path.stem) for path in TEMPLATES.glob("*.yaml")}


@pytest.fixture(scope="module")
def plan() -> list[tuple[str, str, dict[str, str]]]:
    """[(region, template name, parameters)] in deploy order."""
    out = subprocess.run(["bash", str(ROOT / "infra" / "deploy.sh"), "--plan"], env=PLAN_ENV,
                         capture_output=True, text=True, check=True).stdout
    steps = []
    for line in out.splitlines():
        if line.startswith("deploy "):
            _, region, _stack, template, *params = line.split(" ")
            steps.append((region, template.removesuffix(".yaml"), dict(p.split("=", 1) for p in params)))
    return steps


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def only(template: dict, kind: str) -> dict:
    (resource,) = resources(template, kind).values()
    return resource["Properties"]


def default(template: dict, value):
    """A property's value at the template's default parameters."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return template["Parameters"][value["Ref"]]["Default"]
    return value


def deployed_types(templates, plan, region) -> set[str]:
    return {r["Type"] for reg, name, _ in plan if reg == region for r in templates[name]["Resources"].values()}


def test_every_template_is_deployed_and_every_deployed_template_exists(templates, plan):
    assert {name for _, name, _ in plan} == set(templates)


def test_deploy_order_puts_dependencies_first(plan):
    order = [(region, name) for region, name, _ in plan]
    for region in (PRIMARY, STANDBY):
        assert order.index((region, "network")) < order.index((region, "region"))
    assert order.index((PRIMARY, "database")) < order.index((STANDBY, "database-replica"))
    assert order.index((STANDBY, "database-replica")) < order.index((STANDBY, "region"))
    for region in (PRIMARY, STANDBY):
        assert order.index((region, "region")) < order.index((region, "monitoring"))
    assert order.index(("us-east-1", "global")) > max(order.index((r, "region")) for r in (PRIMARY, STANDBY))
    assert order[-1] == ("us-east-1", "monitoring-global")


@pytest.mark.parametrize("region", [PRIMARY, STANDBY])
def test_each_region_runs_the_seeds_backend(templates, plan, region):
    kinds = deployed_types(templates, plan, region)
    assert {
        "AWS::EC2::VPC", "AWS::EC2::NatGateway", "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::VpcLink",
        "AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::AutoScaling::AutoScalingGroup",
        "AWS::ElastiCache::CacheCluster", "AWS::RDS::DBInstance", "AWS::SSM::Parameter",
    } <= kinds


def test_the_primary_region_holds_identity_and_media(templates, plan):
    kinds = deployed_types(templates, plan, PRIMARY)
    assert {"AWS::Cognito::UserPool", "AWS::S3::Bucket", "AWS::CloudFront::Distribution"} <= kinds
    assert not {"AWS::Cognito::UserPool", "AWS::CloudFront::Distribution"} & deployed_types(templates, plan, STANDBY)


def test_global_stacks_live_in_us_east_1(templates, plan):
    # CloudFront's certificate must; the failover records should not depend on the primary region
    assert {(region, name) for region, name, _ in plan if region not in (PRIMARY, STANDBY)} == {
        ("us-east-1", "edge-certificate"), ("us-east-1", "global"), ("us-east-1", "monitoring-global")}
    assert {"AWS::Route53::HealthCheck", "AWS::Route53::RecordSet"} <= deployed_types(templates, plan, "us-east-1")
    pattern = templates["media"]["Parameters"]["MediaCertificateArn"]["AllowedPattern"]
    assert ":acm:us-east-1:" in pattern


def test_roles_per_region(plan):
    roles = {region: params["Role"] for region, name, params in plan if name == "region"}
    assert roles == {PRIMARY: "primary", STANDBY: "standby"}


def test_primary_database_is_multi_az_encrypted_and_protected(templates, plan):
    assert [region for region, name, _ in plan if name == "database"] == [PRIMARY]
    t = templates["database"]
    (db,) = resources(t, "AWS::RDS::DBInstance").values()
    p = db["Properties"]
    assert p["Engine"] == "mysql"
    assert re.fullmatch(r"8\.4\.\d+", default(t, p["EngineVersion"]))
    assert default(t, p["DBInstanceClass"]) == "db.m5.large"
    assert p["MultiAZ"] is True and p["StorageEncrypted"] is True and p["DeletionProtection"] is True
    # the stack's own secret, never RDS-managed (tests/infra/test_data_tier.py says why)
    assert "ManageMasterUserPassword" not in p and "{{resolve:secretsmanager:" in str(p["MasterUserPassword"])
    assert default(t, p["BackupRetentionPeriod"]) >= 7
    assert p["PubliclyAccessible"] is False
    assert db["DeletionPolicy"] == db["UpdateReplacePolicy"] == "Snapshot"


def test_read_replica_of_the_primary_runs_in_the_standby_region(templates, plan):
    (step,) = [(region, params) for region, name, params in plan if name == "database-replica"]
    region, params = step
    assert region == STANDBY
    assert params["SourceDatabaseArn"] == f"<{PRIMARY}:database.DatabaseArn>"
    assert params["SourceRegion"] == PRIMARY
    p = only(templates["database-replica"], "AWS::RDS::DBInstance")
    assert p["SourceDBInstanceIdentifier"] == {"Ref": "SourceDatabaseArn"}
    assert p["KmsKeyId"] and p["DeletionProtection"] is True and p["PubliclyAccessible"] is False


def test_standby_region_reads_the_replica_and_never_migrates(templates, plan):
    region_params = {region: params for region, name, params in plan if name == "region"}
    assert region_params[STANDBY]["DatabaseHost"] == f"<{STANDBY}:database-replica.DatabaseHost>"
    assert region_params[PRIMARY]["DatabaseHost"] == f"<{PRIMARY}:database.DatabaseHost>"
    # Instances never migrate; deploy.sh migrates the writer's region only (tests/infra/test_fleet.py).
    assert [line.split()[1] for line in subprocess.run(
        ["bash", str(ROOT / "infra" / "deploy.sh"), "--plan"], env=PLAN_ENV, capture_output=True, text=True,
        check=True).stdout.splitlines() if line.startswith("migrate ")] == [PRIMARY]


def _ingress_rules(template):
    for name, r in template["Resources"].items():
        if r["Type"] == "AWS::EC2::SecurityGroup":
            yield from ((name, rule) for rule in r["Properties"].get("SecurityGroupIngress", []))
        elif r["Type"] == "AWS::EC2::SecurityGroupIngress":
            yield name, r["Properties"]


def test_no_security_group_is_open_to_the_internet(templates):
    # The public edge is API Gateway, which has no security group; everything behind it is private.
    rules = [rule for t in templates.values() for rule in _ingress_rules(t)]
    assert rules
    for name, rule in rules:
        assert rule.get("CidrIp") not in ("0.0.0.0/0",) and rule.get("CidrIpv6") != "::/0", name
        assert "SourceSecurityGroupId" in rule, name


def test_each_hop_opens_only_the_next_port(templates):
    rules = {name: (rule["FromPort"], rule["ToPort"], rule["SourceSecurityGroupId"]["Ref"])
             for name, rule in _ingress_rules(templates["network"])}
    assert sorted(rules.values()) == [
        (443, 443, "VpcLinkSecurityGroup"),
        (3306, 3306, "AppSecurityGroup"),
        (8080, 8080, "AlbSecurityGroup"),
        (8081, 8081, "AlbSecurityGroup"),
        (11211, 11211, "AppSecurityGroup"),
    ]


def test_network_spans_two_azs_with_a_nat_each(templates):
    t = templates["network"]
    azs = {str(s["Properties"]["AvailabilityZone"]) for s in resources(t, "AWS::EC2::Subnet").values()}
    assert len(azs) == 2
    assert len(resources(t, "AWS::EC2::NatGateway")) == 2
    assert len(resources(t, "AWS::EC2::Subnet")) == 4


def test_instances_require_imdsv2_and_start_private(templates):
    data = only(templates["region"], "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert data["ImageId"] == {"Ref": "AmiId"}
    assert all(m["Ebs"]["Encrypted"] for m in data["BlockDeviceMappings"])
    assert "NetworkInterfaces" not in data  # no public address


def test_user_data_only_points_the_boot_step_at_its_parameters(templates):
    data = only(templates["region"], "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    script = data["UserData"]["Fn::Base64"]["Fn::Sub"]
    assert "/etc/gateway/bootstrap.env" in script
    assert "GATEWAY_SSM_PREFIX=/gateway/${EnvName}/" in script and "AWS_REGION=${AWS::Region}" in script


def test_auto_scaling_group_of_m5_large_over_both_azs(templates):
    t = templates["region"]
    asg = only(t, "AWS::AutoScaling::AutoScalingGroup")
    assert default(t, asg["MinSize"]) >= 2
    instance_type = only(t, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["InstanceType"]
    assert default(t, instance_type) == "m5.large"
    assert "PrivateSubnetIds" in str(asg["VPCZoneIdentifier"])
    assert asg["HealthCheckType"] == "EC2"  # liveness only; readiness routes (tests/infra/test_fleet.py)
    assert asg["InstanceMaintenancePolicy"] == {"MinHealthyPercentage": 100, "MaxHealthyPercentage": 200}
    policy = only(t, "AWS::AutoScaling::ScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling"


def test_alb_is_internal_and_probes_readiness_in_step_with_the_drain(templates):
    t = templates["region"]
    assert only(t, "AWS::ElasticLoadBalancingV2::LoadBalancer")["Scheme"] == "internal"
    tg = only(t, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert tg["HealthCheckPath"] == "/health/ready" and tg["Port"] == 8080
    assert tg["Matcher"]["HttpCode"] == "200"
    drain = int(t["Resources"]["ParamDrainSeconds"]["Properties"]["Value"])
    # out of rotation after `unhealthy` failed probes, the first up to one interval after SIGTERM
    assert drain >= tg["HealthCheckIntervalSeconds"] * (tg["UnhealthyThresholdCount"] + 1)
    longest_request = only(t, "AWS::ApiGatewayV2::Integration")["TimeoutInMillis"] / 1000
    delay = {a["Key"]: a["Value"] for a in tg["TargetGroupAttributes"]}["deregistration_delay.timeout_seconds"]
    assert int(delay) >= drain + longest_request


def test_api_gateway_is_the_throttled_public_edge_into_the_alb(templates):
    t = templates["region"]
    integration = only(t, "AWS::ApiGatewayV2::Integration")
    assert integration["ConnectionType"] == "VPC_LINK" and integration["IntegrationUri"] == {"Ref": "HttpsListener"}
    settings = only(t, "AWS::ApiGatewayV2::Stage")["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] and settings["ThrottlingBurstLimit"]
    assert only(t, "AWS::ApiGatewayV2::DomainName")["DomainName"] == {"Fn::Sub": "api.${DomainName}"}
    assert t["Resources"]["JwtAuthorizer"]["Condition"] == "UseJwtAuthorizer"
    assert only(t, "AWS::ElasticLoadBalancingV2::Listener")["Protocol"] == "HTTPS"


def test_cache_is_memcached_across_both_azs_behind_discovery(templates):
    t = templates["region"]
    cache = only(t, "AWS::ElastiCache::CacheCluster")
    assert cache["Engine"] == "memcached" and cache["AZMode"] == "cross-az" and cache["NumCacheNodes"] == 2
    url = t["Resources"]["ParamCacheUrl"]["Properties"]["Value"]["Fn::Sub"]
    assert url.startswith("memcached+discovery://${Cache.ConfigurationEndpoint.Address}:")


def test_ssm_parameters_are_the_boot_steps_names(templates):
    names = {p["Properties"]["Name"]["Fn::Sub"] for p in resources(templates["region"], "AWS::SSM::Parameter").values()}
    assert names == {f"/gateway/${{EnvName}}/{name}" for name in SSM_NAMES}


def test_instance_role_is_least_privilege(templates):
    role = templates["region"]["Resources"]["InstanceRole"]["Properties"]
    assert "ManagedPolicyArns" not in role
    statements = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
    for s in statements.values():
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert all("*" not in action for action in actions), s["Sid"]
    assert statements["DatabaseSecret"]["Resource"] == [{"Ref": "DatabaseSecretArn"}, {"Ref": "DatabaseMigratorSecretArn"}]
    objects = [r["Fn::Sub"] for r in statements["MediaObjects"]["Resource"]]
    assert objects == ["arn:${AWS::Partition}:s3:::${MediaBucketName}/u/*",
                       "arn:${AWS::Partition}:s3:::${MediaBucketName}/avatars/*",
                       "arn:${AWS::Partition}:s3:::${MediaBucketName}/incoming/*"]
    assert all("/gateway/${EnvName}" in r["Fn::Sub"] for r in statements["BootParameters"]["Resource"])


def test_instances_may_invalidate_the_media_distribution_only(templates, plan):
    """Account deletion drops deleted avatars from CloudFront (plugins/media, MEDIA_CDN_DISTRIBUTION_ID).
    Service Authorization Reference, "Actions, resources, and condition keys for Amazon CloudFront"
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudfront.html):
    CreateInvalidation takes the distribution resource type,
    arn:${Partition}:cloudfront::${Account}:distribution/${DistributionId} (global: no region). Both
    regions get the media stack's distribution id."""
    role = templates["region"]["Resources"]["InstanceRole"]["Properties"]
    statements = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
    invalidation = statements["MediaCdnInvalidation"]
    assert invalidation["Action"] == "cloudfront:CreateInvalidation"
    assert invalidation["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${MediaCdnDistributionId}"}
    assert templates["media"]["Outputs"]["DistributionId"]["Value"] == {"Ref": "Distribution"}
    regions = [params for _, name, params in plan if name == "region"]
    assert len(regions) == 2
    assert all(p["MediaCdnDistributionId"] == f"<{PRIMARY}:media.DistributionId>" for p in regions)


def test_buckets_are_private_encrypted_and_tls_only(templates):
    buckets = [(t, name, r) for t in templates.values() for name, r in resources(t, "AWS::S3::Bucket").items()]
    assert len(buckets) == 5
    for t, name, bucket in buckets:
        p = bucket["Properties"]
        assert set(p["PublicAccessBlockConfiguration"].values()) == {True}, name
        assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        assert "AccessControl" not in p, name
        (policy,) = [r["Properties"]["PolicyDocument"] for r in resources(t, "AWS::S3::BucketPolicy").values()
                     if r["Properties"]["Bucket"] == {"Ref": name}]
        for statement in policy["Statement"]:
            assert not (statement["Effect"] == "Allow" and statement["Principal"] == "*"), name
        assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in str(s) for s in policy["Statement"]), name


def test_media_bucket_versioning_cors_and_abandoned_uploads(templates):
    p = templates["media"]["Resources"]["MediaBucket"]["Properties"]
    assert p["VersioningConfiguration"]["Status"] == "Enabled"
    assert p["CorsConfiguration"]["CorsRules"][0]["AllowedMethods"] == ["POST"]
    rules = {r["Id"]: r for r in p["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-pending-uploads"]["Prefix"] == "incoming/"
    assert "AbortIncompleteMultipartUpload" in rules["abort-incomplete-multipart"]


def test_cloudfront_reads_through_oac_and_signs_all_but_avatars(templates):
    t = templates["media"]
    config = only(t, "AWS::CloudFront::Distribution")["DistributionConfig"]
    assert len(config["Origins"]) == 2
    for origin in config["Origins"]:
        assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["OriginAccessControl", "Id"]}
    assert config["DefaultCacheBehavior"]["TrustedKeyGroups"] == [{"Ref": "KeyGroup"}]
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "https-only"
    (avatars,) = config["CacheBehaviors"]
    assert avatars["PathPattern"] == "avatars/*" and "TrustedKeyGroups" not in avatars
    read = t["Resources"]["MediaBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"} and read["Action"] == "s3:GetObject"
    assert "AWS:SourceArn" in read["Condition"]["StringEquals"]


def test_cognito_public_client_and_optional_providers(templates):
    t = templates["identity"]
    client = only(t, "AWS::Cognito::UserPoolClient")
    assert client["GenerateSecret"] is False
    assert set(client["ExplicitAuthFlows"]) == {"ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}
    assert client["CallbackURLs"] == {"Ref": "CallbackUrls"} and client["LogoutURLs"] == {"Ref": "SignOutUrls"}
    providers = resources(t, "AWS::Cognito::UserPoolIdentityProvider")
    assert {p["Properties"]["ProviderType"] for p in providers.values()} == {
        "SignInWithApple", "Google", "Facebook", "LoginWithAmazon", "SAML", "OIDC"}
    assert all("Condition" in p for p in providers.values())
    assert len(resources(t, "AWS::Cognito::UserPoolDomain")) == 1
    for secret in ("ApplePrivateKey", "GoogleClientSecret", "FacebookAppSecret", "AmazonClientSecret", "OidcClientSecret"):
        assert t["Parameters"][secret]["NoEcho"] is True


def test_api_fails_over_between_regions_on_readiness(templates, plan):
    t = templates["global"]
    probes = [c["Properties"]["HealthCheckConfig"] for c in resources(t, "AWS::Route53::HealthCheck").values()
              if c["Properties"]["HealthCheckConfig"]["Type"] == "HTTPS"]
    assert len(probes) == 2 and {c["ResourcePath"] for c in probes} == {"/health/ready"}
    # the primary record needs its readiness and its switch; the switches: tests/infra/test_data_tier.py
    records = {r["Properties"]["Failover"]: r["Properties"] for r in resources(t, "AWS::Route53::RecordSet").values()}
    served = t["Resources"][records["PRIMARY"]["HealthCheckId"]["Ref"]]["Properties"]["HealthCheckConfig"]
    assert {"Ref": "PrimaryHealthCheck"} in served["ChildHealthChecks"]
    assert records["SECONDARY"]["HealthCheckId"] == {"Ref": "StandbySwitch"}
    (params,) = [params for _, name, params in plan if name == "global"]
    assert params["PrimaryApiDomainName"] == f"<{PRIMARY}:region.ApiRegionalDomainName>"
    assert params["StandbyApiDomainName"] == f"<{STANDBY}:region.ApiRegionalDomainName>"
    assert params["StandbyApiEndpointHost"] == f"<{STANDBY}:region.ApiEndpointHost>"


def test_media_name_points_at_cloudfront(templates):
    records = resources(templates["media"], "AWS::Route53::RecordSet").values()
    assert {r["Properties"]["Type"] for r in records} == {"A", "AAAA"}
    assert all(r["Properties"]["Name"] == {"Fn::Sub": "media.${DomainName}"} for r in records)
