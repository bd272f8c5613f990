"""The media bucket's side of uploads (docs/decisions/media-immutability.md): uploads land under
`incoming/`, which CloudFront may not read and a lifecycle rule expires; complete copies them out;
resumable uploads are S3 multipart uploads, aborted by a lifecycle rule when abandoned. One test per
rule, each naming the AWS page it comes from."""
from __future__ import annotations

from tests.infra.test_cloudformation import load

BUCKETS = {"media": "MediaBucket", "media-replica": "MediaReplicaBucket"}


def rules(template: str) -> dict:
    bucket = load(template)["Resources"][BUCKETS[template]]["Properties"]
    return {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}


def test_uploads_under_incoming_expire_on_both_buckets():
    """CloudFormation, "AWS::S3::Bucket Rule" (Prefix: the object key prefix a rule applies to,
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-s3-bucket-rule.html);
    Amazon S3 User Guide, "Expiring objects". The replica runs its own rules: expirations made by
    lifecycle are not replicated (docs/infra.md, "Data tier")."""
    for template in BUCKETS:
        rule = rules(template)["expire-pending-uploads"]
        assert rule["Status"] == "Enabled" and rule["Prefix"] == "incoming/" and "TagFilters" not in rule
        assert rule["ExpirationInDays"] == {"Ref": "PendingUploadExpirationDays"}


def test_abandoned_multipart_uploads_are_aborted_on_both_buckets_by_a_rule_without_tags():
    """Amazon S3 User Guide, "Configuring a bucket lifecycle configuration to delete incomplete
    multipart uploads" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpu-abort-incomplete-mpu-lifecycle-config.html):
    AbortIncompleteMultipartUpload cannot be combined with object tag filters; the rule covers the
    whole bucket, incoming/ included."""
    for template in BUCKETS:
        rule = rules(template)["abort-incomplete-multipart"]
        assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1
        assert "TagFilters" not in rule and "Prefix" not in rule


def test_cloudfront_reads_published_objects_only():
    """CloudFront Developer Guide, "Restrict access to an Amazon S3 origin"
    (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html):
    the bucket policy decides what origin access control may read; uploads under incoming/ are not
    in it, so no URL, signed or public, serves one."""
    for template, policy_name in (("media", "MediaBucketPolicy"), ("media-replica", "MediaReplicaBucketPolicy")):
        statements = load(template)["Resources"][policy_name]["Properties"]["PolicyDocument"]["Statement"]
        (read,) = [s for s in statements if s["Effect"] == "Allow"]
        paths = [r["Fn::Sub"].split("}", 1)[1] for r in read["Resource"]]
        assert paths == ["/u/*", "/avatars/*"]


def test_the_instance_role_can_run_uploads_and_multipart_sessions_under_incoming():
    """Amazon S3 User Guide, "Uploading and copying objects using multipart upload", "Multipart
    upload API and permissions" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html):
    CreateMultipartUpload, UploadPart and CompleteMultipartUpload need s3:PutObject, ListParts
    s3:ListMultipartUploadParts, AbortMultipartUpload s3:AbortMultipartUpload (on the objects),
    ListMultipartUploads s3:ListBucketMultipartUploads (on the bucket). CopyObject needs s3:GetObject
    on the source and s3:PutObject on the target. The presigned forms and part URLs carry the role's
    credentials, so the role must be allowed what they do."""
    role = load("region")["Resources"]["InstanceRole"]["Properties"]
    statements = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
    objects = statements["MediaObjects"]
    assert {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts"} <= set(objects["Action"])
    assert "arn:${AWS::Partition}:s3:::${MediaBucketName}/incoming/*" in [r["Fn::Sub"] for r in objects["Resource"]]
    assert "s3:ListBucketMultipartUploads" in statements["MediaListing"]["Action"]
