"""Benchmarks (`make bench`): the gateway under gunicorn and wrk, every figure a ratio to a bare
aiohttp handler measured in the same run on the same machine."""
