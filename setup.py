"""Packaging for the gateway and its built-in plugins (registered as `gateway.plugins` entry points)."""
from setuptools import find_packages, setup

setup(
    name="mobile-gateway",
    version="0.1.0",
    description="Async backend for mobile apps on AWS: an aiohttp core that loads plugins.",
    python_requires=">=3.11",
    packages=find_packages(include=["gateway", "gateway.*", "plugins", "plugins.*"]),
    package_data={"plugins": ["*/migrations/*.sql"]},
    install_requires=[
        "aiohttp>=3.11,<4",
        "aiomysql>=0.2,<0.4",
        "aiosqlite>=0.20,<1",
        "aioboto3>=13,<16",
        "apispec>=6.6,<7",
        "cryptography>=42",
        "emcache==1.3.3",  # plugins.data.cache patches one of its internals (fail_lost_batches)
        "gunicorn>=23",
        "marshmallow>=3.20,<5",
        "pyjwt[crypto]>=2.8,<3",
        "uvloop>=0.19",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-aiohttp>=1.1",
            "moto[server,s3,cognitoidp,cognitoidentity,secretsmanager]>=5.0.20",
            "cfn-lint==1.58.0",
            "pyyaml",
            "python-hcl2>=8",
            "build",
            "schemathesis>=4.3,<5",
            "wheel",
        ],
        "bench": ["py-spy>=0.3"],  # BENCH_PROFILE=1
    },
    entry_points={
        "gateway.plugins": [
            "health = plugins.health:plugin",
            "auth = plugins.auth:plugin",
            "data = plugins.data:plugin",
            "profiles = plugins.profiles:plugin",
            "media = plugins.media:plugin",
            "sync = plugins.sync:plugin",
            "ratelimit = plugins.ratelimit:plugin",
        ],
    },
)
