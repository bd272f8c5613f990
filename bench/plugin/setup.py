"""The benchmark's own plugin: an open and a protected no-op route, to price the auth layer."""
from setuptools import setup

setup(
    name="gateway-bench-plugin",
    version="1.0.0",
    packages=["gateway_bench_plugin"],
    entry_points={"gateway.plugins": ["bench = gateway_bench_plugin:plugin"]},
)
