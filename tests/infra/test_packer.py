"""Offline checks of the AMI's definition: the Packer template, the plugin pin, every shell script,
and the systemd units. The tools come from scripts/install-tools.sh; a missing one fails the test."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

from gateway.settings import CoreSettings
from tests.infra import unitfile

ROOT = Path(__file__).resolve().parents[2]
PACKER = ROOT / "infra" / "packer"
FILES = PACKER / "files"
UNITS = sorted([*FILES.glob("*.service"), *FILES.glob("*.timer")])
BAKE_HOST = ["-var", 'ssh_source_cidrs=["203.0.113.7/32"]']


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: run scripts/install-tools.sh"
    return path


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, **kwargs)


def load_hcl(path: Path) -> dict:
    options = hcl2.SerializationOptions(strip_string_quotes=True, with_comments=False, explicit_blocks=False)
    with path.open() as f:
        return hcl2.load(f, serialization_options=options)


def test_packer_fmt():
    result = run(tool("packer"), "fmt", "-check", "-diff", PACKER)
    assert result.returncode == 0, result.stdout + result.stderr


def validate(tmp_path, *options: str) -> subprocess.CompletedProcess:
    """Full validation (builder and provisioner configs), with no AWS credentials and no update check."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), CHECKPOINT_DISABLE="1", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return run(tool("packer"), "validate", *options, PACKER / "gateway.pkr.hcl", env=env, cwd=tmp_path)


def test_packer_validate_offline(tmp_path):
    result = validate(tmp_path, *BAKE_HOST)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("options", [[], ["-var", 'ssh_source_cidrs=["0.0.0.0/0"]'],
                                     ["-var", 'ssh_source_cidrs=["203.0.113.7/32", "::/0"]'],
                                     ["-var", "ssh_source_cidrs=[]"]])
def test_builder_ssh_is_never_open_to_the_internet(tmp_path, options):
    """amazon-ebs builder (https://developer.hashicorp.com/packer/integrations/hashicorp/amazon/latest/components/builder/ebs):
    without temporary_security_group_source_cidrs the temporary group allows SSH from 0.0.0.0/0. The
    template takes no default and refuses the whole internet; bake.sh names the bake host."""
    result = validate(tmp_path, *options)
    assert result.returncode != 0
    assert "ssh_source_cidrs" in result.stdout + result.stderr


def test_builder_clears_its_key_and_limits_ssh():
    source = load_hcl(PACKER / "gateway.pkr.hcl")["source"][0]["amazon-ebs"]["gateway"]
    assert source["ssh_clear_authorized_keys"] is True
    assert source["temporary_security_group_source_cidrs"] == "${var.ssh_source_cidrs}"
    bake = (PACKER / "bake.sh").read_text()
    assert "ssh_source_cidrs=" in bake and "checkip.amazonaws.com" in bake


def test_constraints_pin_every_dependency_by_hash():
    """pip's hash-checking mode (https://pip.pypa.io/en/stable/topics/secure-installs/): every line
    an exact pin with at least one sha256, and install.sh installs with --require-hashes."""
    lines = [line for line in (FILES / "constraints.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==\S+( --hash=sha256:[0-9a-f]{64})+", line), line
    install = (FILES / "install.sh").read_text()
    assert "--require-hashes" in install and "--no-deps" in install


def test_required_plugins_pins_the_amazon_plugin():
    config = load_hcl(PACKER / "plugins.pkr.hcl")
    assert list(config) == ["packer"], "plugins.pkr.hcl holds the packer block only"
    (block,) = config["packer"]
    assert list(block) == ["required_plugins"]
    amazon = block["required_plugins"][0]["amazon"]
    assert amazon["source"] == "github.com/hashicorp/amazon"
    assert re.fullmatch(r"=?\s*\d+\.\d+\.\d+", amazon["version"]), f"not an exact pin: {amazon['version']}"
    assert "packer" not in load_hcl(PACKER / "gateway.pkr.hcl"), "packer 1.6.6 must be able to read the template"


def test_template_builds_the_documented_image():
    config = load_hcl(PACKER / "gateway.pkr.hcl")
    defaults = {name: spec.get("default") for v in config["variable"] for name, spec in v.items()}

    def value(raw):
        match = re.fullmatch(r"\$\{var\.(\w+)\}", raw) if isinstance(raw, str) else None
        return defaults[match[1]] if match else raw

    source = config["source"][0]["amazon-ebs"]["gateway"]
    assert value(source["region"]) == "ap-southeast-1"
    assert value(source["ami_regions"]) == ["ap-south-1"]
    assert value(source["instance_type"]) == "m5.large"
    assert source["encrypt_boot"] is True
    assert source["source_ami_filter"][0]["filters"]["name"].startswith("al2023-ami-")
    assert source["source_ami_filter"][0]["owners"] == ["amazon"]
    tags = config["locals"][0]["tags"]
    assert tags["Version"] == "${var.app_version}" and tags["GitCommit"] == "${var.git_commit}"
    assert source["tags"] == source["snapshot_tags"] == "${local.tags}"


def test_shellcheck_every_script():
    scripts = sorted(p for d in ("infra", "scripts") for p in (ROOT / d).rglob("*.sh"))
    assert FILES / "install.sh" in scripts and FILES / "provision.sh" in scripts
    result = run(tool("shellcheck"), "--external-sources", *scripts)
    assert result.returncode == 0, result.stdout + result.stderr


def systemd_unit_dir() -> Path:
    for candidate in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (candidate / "sysinit.target").exists():
            return candidate
    raise AssertionError("no systemd unit directory with sysinit.target: install systemd")


def test_units_verify_cleanly(tmp_path):
    """`systemd-analyze verify` in a root of its own: the distribution's units, ours, and stand-ins
    for the programs ours run (the install test runs the real ones). Any output is a failure."""
    analyze = tool("systemd-analyze")
    shutil.copytree(systemd_unit_dir(), tmp_path / "usr/lib/systemd/system", symlinks=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, tmp_path / "etc/systemd/system")
        for key, values in unitfile.directives(unit).items():
            for value in values if key.startswith("Exec") else ():
                program = tmp_path / unitfile.command(value)[0].lstrip("/")
                program.parent.mkdir(parents=True, exist_ok=True)
                program.write_text("#!/bin/sh\n")
                program.chmod(0o755)
    result = run(analyze, "verify", "--man=no", f"--root={tmp_path}", *(u.name for u in UNITS))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_gateway_unit_contract():
    unit = unitfile.directives(FILES / "gateway.service")
    assert unit["ExecStart"] == [
        "/opt/gateway/venv/bin/gunicorn -c python:gateway.gunicorn_conf gateway.app:create_app()"]
    # Configuration and this instance's files only: nothing networked blocks start-up.
    assert unit["ExecStartPre"] == ["/opt/gateway/venv/bin/python -m gateway check --local"]
    assert unit["EnvironmentFile"] == ["/etc/gateway/gateway.env"]
    assert "gateway-config.service" in unit["Requires"] and "gateway-config.service" in unit["After"][0]
    assert unit["User"] == ["gateway"] and unit["Restart"] == ["on-failure"]
    assert int(unit["TimeoutStopSec"][0]) > longest_graceful_stop()
    for key, expected in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                          "PrivateTmp": "yes", "StateDirectory": "gateway", "CapabilityBoundingSet": ""}.items():
        assert unit[key] == [expected], key
    assert unit["LimitNOFILE"]


def longest_graceful_stop() -> float:
    """gunicorn's graceful timeout at the longest drain the settings accept."""
    longest_drain = CoreSettings().fields["drain_seconds"].validators[0].max
    env = {**os.environ, "GATEWAY_DRAIN_SECONDS": str(longest_drain), "GATEWAY_PLUGINS": "health"}
    result = run(sys.executable, "-c", "import gateway.gunicorn_conf as c; print(c.graceful_timeout)", env=env)
    assert result.returncode == 0, result.stderr
    return float(result.stdout)


HARDENING = ("NoNewPrivileges", "CapabilityBoundingSet", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
             "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock",
             "ProtectHostname", "ProtectProc", "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime",
             "RestrictSUIDSGID", "LockPersonality", "RemoveIPC", "SystemCallArchitectures", "SystemCallFilter",
             "SystemCallErrorNumber", "User", "Group", "UMask", "EnvironmentFile", "Environment", "StateDirectory")


@pytest.mark.parametrize("job, every", [("accounts-sweep", 15 * 60), ("media-cleanup", 3600)])
def test_background_jobs_run_from_timers_like_the_api(job, every):
    """The app's periodic commands (account deletions left pending, expired uploads) on every serving
    instance: the API's user, environment and hardening, a spread start, one run at a time per
    instance (a timer does not start a service that is still running), done before the next."""
    service = unitfile.directives(FILES / f"gateway-{job}.service")
    timer = unitfile.directives(FILES / f"gateway-{job}.timer")
    api = unitfile.directives(FILES / "gateway.service")
    assert service["ExecStart"] == [f"/opt/gateway/venv/bin/python -m gateway {job}"]
    assert service["Type"] == ["oneshot"] and "WantedBy" not in service
    for key in HARDENING:
        assert service[key] == api[key], key
    assert service["ConditionPathExists"] == ["/etc/gateway/gateway.env", "!/etc/gateway/migrate"]
    assert unitfile.seconds(timer["OnUnitActiveSec"][0]) == every and unitfile.seconds(timer["RandomizedDelaySec"][0]) > 0
    assert unitfile.seconds(service["TimeoutStartSec"][0]) <= every
    assert timer["WantedBy"] == ["timers.target"]
    commands = run(sys.executable, "-m", "gateway", "--help", env={**os.environ, "GATEWAY_ENV": "test"})
    assert job in commands.stdout, commands.stdout + commands.stderr


def test_boot_unit_runs_the_config_step():
    unit = unitfile.directives(FILES / "gateway-config.service")
    assert unit["Type"] == ["oneshot"] and unit["RemainAfterExit"] == ["yes"]
    assert unit["ExecStart"][0] == "/opt/gateway/venv/bin/python /opt/gateway/boot/gateway-config.py"


def test_provision_installs_and_enables_every_unit():
    """Every unit and boot script in files/ reaches the image, and every unit that names a target
    to be wanted by is enabled (the liveness service runs from its timer)."""
    provision = (FILES / "provision.sh").read_text()
    enabled = re.search(r"^systemctl enable (.+)$", provision, re.MULTILINE)[1].split()
    for path in UNITS:
        assert f'"$files/{path.name}"' in provision, path.name
        assert (path.name in enabled) == ("WantedBy" in unitfile.directives(path)), path.name
    for path in FILES.glob("*.py"):
        assert f'"$files/{path.name}"' in provision and "/opt/gateway/boot" in provision, path.name
        users = [u for u in UNITS if f"/opt/gateway/boot/{path.name}" in u.read_text()]
        assert users, f"{path.name}: no unit runs it"


@pytest.fixture(scope="module")
def ca_bundle(tmp_path_factory) -> Path:
    """Two real certificates, made here with openssl."""
    tmp = tmp_path_factory.mktemp("ca")
    for name in ("a", "b"):
        subprocess.run([tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        f"/CN={name}", "-keyout", tmp / f"{name}.key", "-out", tmp / f"{name}.pem"],
                       check=True, capture_output=True, timeout=60)
    bundle = tmp / "bundle.pem"
    bundle.write_text((tmp / "a.pem").read_text() + (tmp / "b.pem").read_text())
    return bundle


def check_ca_bundle(path: Path, *digest: str) -> subprocess.CompletedProcess:
    return run("bash", FILES / "check-ca-bundle.sh", path, *digest)


def test_ca_bundle_check_accepts_certificates_and_their_digest(ca_bundle):
    """What provision.sh bakes as /etc/gateway/rds-ca-bundle.pem passes this check first."""
    digest = hashlib.sha256(ca_bundle.read_bytes()).hexdigest()
    for result in (check_ca_bundle(ca_bundle), check_ca_bundle(ca_bundle, digest)):
        assert result.returncode == 0, result.stderr
        assert f"sha256 {digest}, 2 of 2 certificates parsed" in result.stdout
    assert '"$files/check-ca-bundle.sh" /tmp/rds-ca-bundle.pem' in (FILES / "provision.sh").read_text()


def test_ca_bundle_check_refuses_anything_else(ca_bundle, tmp_path):
    text = ca_bundle.read_text()
    lines = text.splitlines()
    lines[3] = "A" * len(lines[3])  # corrupt the first certificate's body
    cases = {"empty": "", "not pem": "<html>not found</html>\n", "corrupt": "\n".join(lines) + "\n",
             "truncated": text[:-100]}
    for name, content in cases.items():
        path = tmp_path / f"{name.replace(' ', '-')}.pem"
        path.write_text(content)
        assert check_ca_bundle(path).returncode != 0, name
    assert check_ca_bundle(ca_bundle, "0" * 64).returncode != 0
