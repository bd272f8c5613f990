# The gateway AMI: Amazon Linux 2023 on m5.large, baked in ap-southeast-1 and copied to ap-south-1.
# Bake with infra/packer/bake.sh (see docs/operations.md). The template keeps to what packer 1.6.6
# accepts, so CI validates it offline; plugins.pkr.hcl pins the plugin for current Packer.

variable "app_version" {
  type        = string
  default     = "0.1.0"
  description = "Version of the wheel in dist/ (setup.py's version)."
}

variable "git_commit" {
  type        = string
  default     = "unknown"
  description = "Commit the wheel was built from; bake.sh passes `git rev-parse HEAD`."
}

variable "region" {
  type    = string
  default = "ap-southeast-1"
}

variable "copy_regions" {
  type    = list(string)
  default = ["ap-south-1"]
}

variable "instance_type" {
  type    = string
  default = "m5.large"
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the AMI's snapshots in the build region; empty: the account's aws/ebs key."
}

variable "region_kms_key_ids" {
  type        = map(string)
  default     = {}
  description = "KMS key per copy region; empty: each region's aws/ebs key."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance (needs a route out for dnf and PyPI); empty: the default VPC."
}

# No default: Packer's own default opens SSH to 0.0.0.0/0. bake.sh passes the bake host's address.
# (packer 1.6.6 has no temporary_security_group_source_public_ip, which would look it up itself.)
variable "ssh_source_cidrs" {
  type        = list(string)
  description = "Who may reach the builder's temporary security group on SSH: the bake host's address."
  validation {
    condition     = length(var.ssh_source_cidrs) > 0 && ! contains(var.ssh_source_cidrs, "0.0.0.0/0") && ! contains(var.ssh_source_cidrs, "::/0")
    error_message = "The ssh_source_cidrs must name the bake host's addresses, not the whole internet."
  }
}

variable "rds_ca_bundle_sha256" {
  type        = string
  default     = ""
  description = "sha256 of the RDS CA bundle to bake; empty: record the downloaded bundle's digest in the build log only."
}

locals {
  timestamp = formatdate("YYYYMMDDhhmmss", timestamp())
  ami_name  = "gateway-${var.app_version}-${substr(var.git_commit, 0, 12)}-${local.timestamp}"
  wheel     = "${path.root}/../../dist/mobile_gateway-${var.app_version}-py3-none-any.whl"
  tags = {
    Name         = local.ami_name
    Application  = "gateway"
    Version      = var.app_version
    GitCommit    = var.git_commit
    BaseAMI      = "{{ .SourceAMI }}"
    BaseAMIName  = "{{ .SourceAMIName }}"
    BuildRegion  = var.region
    BuildTimeUTC = local.timestamp
  }
}

source "amazon-ebs" "gateway" {
  region          = var.region
  ami_regions     = var.copy_regions
  instance_type   = var.instance_type
  subnet_id       = var.subnet_id
  ami_name        = local.ami_name
  ami_description = "Mobile gateway ${var.app_version} (${var.git_commit}) on Amazon Linux 2023"

  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-kernel-6.1-x86_64"
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  ssh_username                          = "ec2-user"
  temporary_security_group_source_cidrs = var.ssh_source_cidrs
  # Packer's temporary public key leaves the image with the build.
  ssh_clear_authorized_keys = true

  encrypt_boot       = true
  kms_key_id         = var.kms_key_id
  region_kms_key_ids = var.region_kms_key_ids

  # packer 1.6.6 insists on throughput for gp3; these are gp3's baseline values.
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = 20
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    encrypted             = true
    delete_on_termination = true
  }

  tags          = local.tags
  snapshot_tags = local.tags
  run_tags      = local.tags
}

build {
  sources = ["source.amazon-ebs.gateway"]

  provisioner "file" {
    source      = "${path.root}/files"
    destination = "/tmp"
  }

  provisioner "file" {
    source      = local.wheel
    destination = "/tmp/files/"
    # Built by bake.sh before the build, so only checked when uploading.
    generated = true
  }

  provisioner "shell" {
    script          = "${path.root}/files/provision.sh"
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
    environment_vars = [
      "GATEWAY_FILES=/tmp/files",
      "GATEWAY_WHEEL=/tmp/files/${basename(local.wheel)}",
      "RDS_CA_BUNDLE_SHA256=${var.rds_ca_bundle_sha256}",
    ]
  }

  post-processor "manifest" {
    output     = "${path.root}/../../dist/packer-manifest.json"
    strip_path = true
    custom_data = {
      version    = var.app_version
      git_commit = var.git_commit
    }
  }
}
