#!/usr/bin/env bash
# Deploys the gateway's CloudFormation stacks in order, in both regions, with the AWS CLI, and
# prints each stack's outputs. Later stacks take earlier stacks' outputs as parameters.
#
#   infra/deploy.sh           deploy (needs AWS credentials)
#   infra/deploy.sh --plan    print what would be deployed where, without calling AWS
#
# Required environment:
#   DOMAIN_NAME              apex domain of the Route 53 hosted zone, e.g. example.com
#   HOSTED_ZONE_ID           that hosted zone's id
#   AMI_ID_PRIMARY           the Packer AMI in PRIMARY_REGION
#   AMI_ID_STANDBY           its copy in STANDBY_REGION
#   HOSTED_UI_DOMAIN_PREFIX  Cognito hosted UI prefix (<prefix>.auth.<region>.amazoncognito.com)
#   CDN_PRIVATE_KEY_FILE     RSA private key (PEM) that signs CloudFront URLs
# Optional environment:
#   ENV_NAME (prod), PRIMARY_REGION (ap-southeast-1), STANDBY_REGION (ap-south-1),
#   ENABLE_JWT_AUTHORIZER (false), IDENTITY_PARAMETERS (extra Key=Value overrides for
#   identity.yaml, space-separated: identity providers, callback URLs, SES sender),
#   ALARM_EMAIL (subscribed to the alarm topics), MIGRATE_TIMEOUT_SECONDS (1800: how long the
#   migration instance may take)
set -euo pipefail

plan=false
if [ "${1:-}" = "--plan" ]; then
  plan=true
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--plan]" >&2
  exit 2
fi

: "${DOMAIN_NAME:?}" "${HOSTED_ZONE_ID:?}" "${AMI_ID_PRIMARY:?}" "${AMI_ID_STANDBY:?}"
: "${HOSTED_UI_DOMAIN_PREFIX:?}" "${CDN_PRIVATE_KEY_FILE:?}"
env_name=${ENV_NAME:-prod}
primary=${PRIMARY_REGION:-ap-southeast-1}
standby=${STANDBY_REGION:-ap-south-1}
# CloudFront takes ACM certificates only from us-east-1, and Route 53's control plane is there:
# the global stacks live in us-east-1 so that an outage of the primary region never blocks them.
global=us-east-1
templates=$(cd "$(dirname "$0")/cloudformation" && pwd)
read -ra identity_parameters <<<"${IDENTITY_PARAMETERS:-}"

# deploy REGION NAME [Key=Value...]: deploys cloudformation/NAME.yaml as gateway-<env>-NAME.
deploy() {
  local region=$1 name=$2
  shift 2
  local shown=() kv
  for kv in "$@"; do
    case ${kv%%=*} in
      *Secret | *PrivateKey | CdnPublicKey) shown+=("${kv%%=*}=***") ;;
      *) shown+=("$kv") ;;
    esac
  done
  echo "deploy $region gateway-$env_name-$name $name.yaml ${shown[*]}"
  "$plan" && return
  aws cloudformation deploy --region "$region" --stack-name "gateway-$env_name-$name" \
    --template-file "$templates/$name.yaml" --capabilities CAPABILITY_IAM \
    --no-fail-on-empty-changeset --tags "app=gateway" "env=$env_name" \
    ${1:+--parameter-overrides "$@"}
  aws cloudformation describe-stacks --region "$region" --stack-name "gateway-$env_name-$name" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output table
}

# output REGION NAME KEY: one output of a deployed stack (a placeholder under --plan).
output() {
  if "$plan"; then
    echo "<$1:$2.$3>"
    return
  fi
  aws cloudformation describe-stacks --region "$1" --stack-name "gateway-$env_name-$2" \
    --query "Stacks[0].Outputs[?OutputKey=='$3'].OutputValue" --output text
}

# put_private_key REGION: the CloudFront signing key, as a SecureString the boot step reads.
put_private_key() {
  echo "ssm $1 /gateway/$env_name/MEDIA_CDN_PRIVATE_KEY (SecureString)"
  "$plan" && return
  aws ssm put-parameter --region "$1" --name "/gateway/$env_name/MEDIA_CDN_PRIVATE_KEY" \
    --type SecureString --overwrite --value "file://$CDN_PRIVATE_KEY_FILE" >/dev/null
}

# replica_arn ARN REGION: a replicated secret's ARN in REGION (the same ARN but for the region).
replica_arn() {
  if "$plan"; then
    echo "${1%>}@$2>"
  else
    echo "${1/:$primary:/:$2:}"
  fi
}

# refresh REGION: replaces instances that do not match the launch template (a new AMI), new
# before old; a no-op when all match. The group's health type is EC2 (liveness), so the refresh
# would count a new instance that never becomes ready; the ALB's unhealthy-hosts alarm
# (monitoring.yaml) fails the refresh instead. The warm-up is the group's DefaultInstanceWarmup.
refresh() {
  local group
  group=$(output "$1" region AutoScalingGroupName)
  echo "instance-refresh $1 $group"
  "$plan" && return
  aws autoscaling start-instance-refresh --region "$1" --auto-scaling-group-name "$group" \
    --preferences "{\"MinHealthyPercentage\":100,\"MaxHealthyPercentage\":200,\"SkipMatching\":true,
      \"AlarmSpecification\":{\"Alarms\":[\"gateway-$env_name-alb-unhealthy-hosts\"]}}" \
    || echo "warning: instance refresh not started in $1 (one may be running already)" >&2
}

# migrate REGION: applies the release's migrations once per deploy, before its instances serve: one
# instance of the region's latest launch template, told by its user data to run
# gateway-migrate.service (the app's `migrate`, under a MySQL named lock) instead of serving,
# powers off when done; this waits at most MIGRATE_TIMEOUT_SECONDS (1800) and reads the outcome
# from its console. Instances never migrate on boot.
migrate() {
  local region=$1 template subnet user_data instance deadline console=""
  template=$(output "$region" region LaunchTemplateId)
  subnet=$(output "$region" network PrivateSubnetIds)
  user_data=$(printf '%s\n' '#!/bin/bash' 'set -euo pipefail' 'install -d -m 0755 /etc/gateway' \
    "printf 'GATEWAY_SSM_PREFIX=/gateway/$env_name/\\nAWS_REGION=$region\\n' > /etc/gateway/bootstrap.env" \
    'touch /etc/gateway/migrate')
  echo "migrate $region $template ${subnet%%,*}"
  if "$plan"; then
    echo "  | ${user_data//$'\n'/$'\n'  | }"
    return
  fi
  instance=$(aws ec2 run-instances --region "$region" --subnet-id "${subnet%%,*}" \
    --launch-template "LaunchTemplateId=$template,Version=\$Latest" --user-data "$user_data" \
    --instance-initiated-shutdown-behavior stop \
    --tag-specifications "ResourceType=instance,Tags=[{Key=Name,Value=gateway-$env_name-migrate}]" \
    --query 'Instances[0].InstanceId' --output text)
  deadline=$((SECONDS + ${MIGRATE_TIMEOUT_SECONDS:-1800}))
  until [ "$(aws ec2 describe-instances --region "$region" --instance-ids "$instance" \
    --query 'Reservations[0].Instances[0].State.Name' --output text)" = stopped ] || [ "$SECONDS" -ge "$deadline" ]; do
    sleep 15
  done
  # The console output is posted shortly after the instance stops.
  while [ "$SECONDS" -lt $((deadline + 300)) ] && ! grep -q 'gateway-migrate: ' <<<"$console"; do
    sleep 15
    console=$(aws ec2 get-console-output --region "$region" --instance-id "$instance" --query Output --output text)
  done
  aws ec2 terminate-instances --region "$region" --instance-ids "$instance" >/dev/null
  if ! grep -q 'gateway-migrate: done' <<<"$console"; then
    echo "migrations failed or timed out in $region ($instance); its console:" >&2
    tail -n 40 <<<"$console" >&2
    return 1
  fi
}

# refresh_jwks REGION: this region's copy of the user pool's JWKS, now, so that instances of this
# deploy find it (region.yaml's function also refreshes it every hour).
refresh_jwks() {
  local name error
  name=$(output "$1" region JwksRefreshFunctionName)
  echo "jwks $1 $name"
  "$plan" && return
  error=$(aws lambda invoke --region "$1" --function-name "$name" --query FunctionError --output text /dev/null)
  if [ "$error" != None ]; then
    echo "JWKS copy failed in $1 ($error): see the /gateway/$env_name/jwks-refresh log group" >&2
    return 1
  fi
}

# vpc_cidr REGION: one /16 per region, the same whichever role the region plays.
vpc_cidr() {
  case $1 in
    ap-southeast-1) echo 10.0.0.0/16 ;;
    ap-south-1) echo 10.1.0.0/16 ;;
    *) echo "no VPC CIDR chosen for $1" >&2; return 1 ;;
  esac
}

primary_cidr=$(vpc_cidr "$primary")
standby_cidr=$(vpc_cidr "$standby")

common=("EnvName=$env_name")
zone=("DomainName=$DOMAIN_NAME" "HostedZoneId=$HOSTED_ZONE_ID")
if "$plan"; then
  public_key="<public key of $CDN_PRIVATE_KEY_FILE>"
else
  public_key=$(openssl rsa -in "$CDN_PRIVATE_KEY_FILE" -pubout 2>/dev/null)
fi

deploy "$global" edge-certificate "${zone[@]}"
deploy "$primary" network "${common[@]}" "VpcCidr=$primary_cidr"
deploy "$standby" network "${common[@]}" "VpcCidr=$standby_cidr"
deploy "$primary" identity "${common[@]}" "HostedUiDomainPrefix=$HOSTED_UI_DOMAIN_PREFIX" \
  ${identity_parameters[@]+"${identity_parameters[@]}"}
# The replica bucket first (the distribution's failover origin), then the distribution, then the
# replica bucket's policy naming that distribution.
deploy "$standby" media-replica "${common[@]}"
deploy "$primary" media "${common[@]}" "${zone[@]}" \
  "MediaCertificateArn=$(output "$global" edge-certificate MediaCertificateArn)" \
  "CdnPublicKey=$public_key" \
  "ReplicaBucketArn=$(output "$standby" media-replica MediaBucketArn)" \
  "ReplicaBucketDomainName=$(output "$standby" media-replica MediaBucketRegionalDomainName)"
deploy "$standby" media-replica "${common[@]}" \
  "DistributionArn=$(output "$primary" media DistributionArn)"
deploy "$primary" database "${common[@]}" "StandbyRegion=$standby" \
  "StandbyKeyArn=$(output "$standby" network LogKeyArn)"
deploy "$standby" database-replica "${common[@]}" "SourceRegion=$primary" \
  "SourceDatabaseArn=$(output "$primary" database DatabaseArn)"

put_private_key "$primary"
put_private_key "$standby"

# Each region reads its own copies of the secrets and signs for the media bucket in its region.
app_secret=$(output "$primary" database AppSecretArn)
master_secret=$(output "$primary" database MasterSecretArn)
app=("${common[@]}" "${zone[@]}"
  "DatabaseName=$(output "$primary" database DatabaseName)"
  "CognitoRegion=$primary"
  "UserPoolId=$(output "$primary" identity UserPoolId)"
  "AppClientId=$(output "$primary" identity AppClientId)"
  "MediaCdnUrl=$(output "$primary" media MediaCdnUrl)"
  "MediaCdnKeyPairId=$(output "$primary" media MediaCdnKeyPairId)"
  "MediaCdnDistributionId=$(output "$primary" media DistributionId)"
  "EnableJwtAuthorizer=${ENABLE_JWT_AUTHORIZER:-false}")
deploy "$primary" region "${app[@]}" Role=primary "AmiId=$AMI_ID_PRIMARY" \
  "DatabaseHost=$(output "$primary" database DatabaseHost)" \
  "DatabaseSecretArn=$app_secret" "DatabaseMigratorSecretArn=$master_secret" \
  "MediaBucketName=$(output "$primary" media MediaBucketName)" "MediaBucketRegion=$primary"
deploy "$standby" region "${app[@]}" Role=standby "AmiId=$AMI_ID_STANDBY" \
  "DatabaseHost=$(output "$standby" database-replica DatabaseHost)" \
  "DatabaseSecretArn=$(replica_arn "$app_secret" "$standby")" \
  "DatabaseMigratorSecretArn=$(replica_arn "$master_secret" "$standby")" \
  "MediaBucketName=$(output "$standby" media-replica MediaBucketName)" "MediaBucketRegion=$standby"

deploy "$global" global "${zone[@]}" \
  "PrimaryApiEndpointHost=$(output "$primary" region ApiEndpointHost)" \
  "PrimaryApiDomainName=$(output "$primary" region ApiRegionalDomainName)" \
  "PrimaryApiHostedZoneId=$(output "$primary" region ApiRegionalHostedZoneId)" \
  "StandbyApiEndpointHost=$(output "$standby" region ApiEndpointHost)" \
  "StandbyApiDomainName=$(output "$standby" region ApiRegionalDomainName)" \
  "StandbyApiHostedZoneId=$(output "$standby" region ApiRegionalHostedZoneId)"

# Fleet: the JWKS copy in each region, alarms and dashboards, then the migrations (once, in the
# writer's region) before any instance of this release replaces one of the last.
refresh_jwks "$primary"
refresh_jwks "$standby"
for region in "$primary" "$standby"; do
  role=primary
  [ "$region" = "$standby" ] && role=standby
  deploy "$region" monitoring "${common[@]}" "Role=$role" "AlarmEmail=${ALARM_EMAIL:-}" \
    "AutoScalingGroupName=$(output "$region" region AutoScalingGroupName)" \
    "LoadBalancerFullName=$(output "$region" region LoadBalancerFullName)" \
    "TargetGroupFullName=$(output "$region" region TargetGroupFullName)" \
    "ApiId=$(output "$region" region ApiId)" "CacheClusterId=$(output "$region" region CacheClusterId)" \
    "JwksRefreshFunctionName=$(output "$region" region JwksRefreshFunctionName)"
done
deploy "$global" monitoring-global "${common[@]}" "AlarmEmail=${ALARM_EMAIL:-}" \
  "PrimaryHealthCheckId=$(output "$global" global PrimaryHealthCheckId)" \
  "StandbyHealthCheckId=$(output "$global" global StandbyHealthCheckId)"
migrate "$primary"

refresh "$primary"
refresh "$standby"
