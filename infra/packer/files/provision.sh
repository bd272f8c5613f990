#!/usr/bin/env bash
# Runs as root on the Packer builder (Amazon Linux 2023): the OS side of the gateway image.
#   GATEWAY_FILES  the uploaded infra/packer/files directory
#   GATEWAY_WHEEL  the uploaded wheel of the repo
#   RDS_CA_BUNDLE_SHA256  expected sha256 of the RDS CA bundle; empty: only logged
set -euo pipefail

files=${GATEWAY_FILES:?}
wheel=${GATEWAY_WHEEL:?}
rds_ca_url=https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem

dnf -y -q install python3.11 python3.11-pip amazon-cloudwatch-agent logrotate
dnf -y -q clean all

id gateway >/dev/null 2>&1 ||
  useradd --system --user-group --home-dir /var/lib/gateway --no-create-home --shell /sbin/nologin gateway

GATEWAY_PREFIX=/opt/gateway GATEWAY_PYTHON=python3.11 bash "$files/install.sh" "$wheel" "$files/constraints.txt"
install -D -m 0644 -t /opt/gateway/boot "$files/gateway-config.py" "$files/gateway-liveness.py" \
  "$files/cloudwatch-agent.json"
install -m 0644 "$files/constraints.txt" /opt/gateway/constraints.txt

install -m 0644 -t /etc/systemd/system "$files/gateway.service" "$files/gateway-config.service" \
  "$files/gateway-migrate.service" "$files/gateway-liveness.service" "$files/gateway-liveness.timer" \
  "$files/gateway-accounts-sweep.service" "$files/gateway-accounts-sweep.timer" \
  "$files/gateway-media-cleanup.service" "$files/gateway-media-cleanup.timer"
install -m 0644 "$files/gateway.logrotate" /etc/logrotate.d/gateway
install -d -m 0755 /etc/gateway

# The RDS certificate authorities (all regions), for the app's TLS to MySQL: fetched over HTTPS from
# AWS's trust store, checked to be certificates and, when the bake pins it, by digest.
curl -fsS --retry 3 -o /tmp/rds-ca-bundle.pem "$rds_ca_url"
bash "$files/check-ca-bundle.sh" /tmp/rds-ca-bundle.pem "${RDS_CA_BUNDLE_SHA256:-}"
install -m 0644 /tmp/rds-ca-bundle.pem /etc/gateway/rds-ca-bundle.pem
rm -f /tmp/rds-ca-bundle.pem
install -d -m 0750 -o gateway -g gateway /var/lib/gateway
# systemd, as root, opens the log for the service; only root (and the agent) read it.
install -d -m 0750 /var/log/gateway

systemctl daemon-reload
systemctl enable gateway-config.service gateway.service gateway-migrate.service gateway-liveness.timer gateway-accounts-sweep.timer gateway-media-cleanup.timer
rm -rf "$files"
