"""Liveness report: the Auto Scaling group's shallow health check (docs/operations.md).

Run by gateway-liveness.timer with the app venv's Python. Probes the API's /health/live (the
process serves; no dependency is consulted) up to PROBES times, PAUSE seconds apart, and when no
probe answers 200 marks this instance Unhealthy with its Auto Scaling group, which terminates and
replaces it. The call respects the group's health-check grace period, so an instance still booting
is never marked, and nothing is reported while systemd is starting, stopping or reloading the API
(a restart by an operator; its own timeouts bound that). A database failover or a cache outage leaves /health/live answering and the fleet
in place; only the ALB's deep check (/health/ready on the internal port) reacts to those.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

PROBES, PAUSE, TIMEOUT = 3, 5.0, 2.0
METADATA = os.environ.get("GATEWAY_METADATA_URL", "http://169.254.169.254")
UNIT = "gateway.service"
TRANSITIONS = {"activating", "deactivating", "reloading"}


def live(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status == 200
    except OSError:  # refused, timed out, or an HTTP error status
        return False


def in_transition() -> bool:
    state = subprocess.run(["systemctl", "is-active", UNIT], capture_output=True, text=True, timeout=10)
    return state.stdout.strip() in TRANSITIONS


def instance_id() -> str:
    """This instance's id from the instance metadata service (IMDSv2, as the launch template requires)."""
    token_request = urllib.request.Request(f"{METADATA}/latest/api/token", method="PUT",
                                           headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    with urllib.request.urlopen(token_request, timeout=TIMEOUT) as response:
        token = response.read().decode()
    id_request = urllib.request.Request(f"{METADATA}/latest/meta-data/instance-id",
                                        headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(id_request, timeout=TIMEOUT) as response:
        return response.read().decode()


def main(url: str, pause: float = PAUSE) -> int:
    for attempt in range(PROBES):
        if live(url):
            return 0
        if attempt < PROBES - 1:
            time.sleep(pause)
    if in_transition():
        return 0
    instance = instance_id()
    print(f"gateway-liveness: {url} failed {PROBES} probes; marking {instance} Unhealthy", file=sys.stderr, flush=True)
    autoscaling = boto3.client("autoscaling", region_name=os.environ["AWS_REGION"],
                               config=Config(retries={"mode": "standard", "max_attempts": 3}))
    autoscaling.set_instance_health(InstanceId=instance, HealthStatus="Unhealthy", ShouldRespectGracePeriod=True)
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1]))
    except (OSError, subprocess.SubprocessError, BotoCoreError, ClientError) as exc:
        print(f"gateway-liveness: {exc}", file=sys.stderr)
        sys.exit(2)
