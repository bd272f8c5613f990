"""The media stores: S3 with CloudFront (s3.py, cloudfront.py) and the embedded one (local.py),
with the same operations (store.py); media/__init__.py opens the configured one."""
