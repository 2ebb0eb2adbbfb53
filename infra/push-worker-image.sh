#!/usr/bin/env bash
# Build the worker image and push it to ECR, in the repository the stack's
# execution role may pull from (<stack>-worker). Prints the image URI to give
# `sam deploy` as WorkerImageUri. Needs Docker and AWS credentials.
#
#   infra/push-worker-image.sh STACK_NAME [REGION]
set -euo pipefail
stack=${1:?usage: infra/push-worker-image.sh STACK_NAME [REGION]}
region=${2:-$(aws configure get region)}
account=$(aws sts get-caller-identity --query Account --output text)
repository="${stack}-worker"
registry="${account}.dkr.ecr.${region}.amazonaws.com"
tag=$(git rev-parse --short HEAD 2>/dev/null || date +%Y%m%d%H%M%S)

aws ecr describe-repositories --region "$region" --repository-names "$repository" >/dev/null 2>&1 \
  || aws ecr create-repository --region "$region" --repository-name "$repository" \
       --image-scanning-configuration scanOnPush=true --encryption-configuration encryptionType=AES256 >/dev/null
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry" >&2
cd "$(dirname "$0")/.."
docker build --platform linux/amd64 -f infra/Dockerfile -t "${registry}/${repository}:${tag}" . >&2
docker push "${registry}/${repository}:${tag}" >&2
echo "${registry}/${repository}:${tag}"
