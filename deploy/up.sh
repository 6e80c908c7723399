#!/usr/bin/env bash
# Builds the image and brings the stack up: three NATS JetStream nodes in a
# cluster, the ledger of record and each service in its own container, and
# the gateway on http://127.0.0.1:${SAL_HTTP_PORT:-8080}.
# The first start prints demo credentials: docker-compose logs gateway
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/build.sh
docker-compose up -d
services="n1 n2 n3 ledger commitments assessments enforcement scorecards gateway"
echo "waiting for every service to be healthy..."
for _ in $(seq 1 90); do
  unhealthy=""
  for s in $services; do
    id=$(docker-compose ps -q "$s" 2>/dev/null || true)
    if [ -z "$id" ] || [ "$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null)" != healthy ]; then
      unhealthy="$unhealthy $s"
    fi
  done
  if [ -z "$unhealthy" ]; then
    docker-compose ps
    echo "up: http://127.0.0.1:${SAL_HTTP_PORT:-8080}/  (credentials: docker-compose logs gateway | grep -A6 'Demo credentials')"
    exit 0
  fi
  sleep 2
done
docker-compose ps
docker-compose logs --tail 30
echo "not healthy after 180 s:$unhealthy" >&2
exit 1
