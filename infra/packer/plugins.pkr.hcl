# Plugins for Packer >= 1.7 (`packer init infra/packer`). Kept apart from gateway.pkr.hcl, which
# Debian's packer 1.6.6 (built-in amazon-ebs, no `required_plugins`) validates on its own in CI.
packer {
  required_plugins {
    amazon = {
      version = "= 1.8.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}
