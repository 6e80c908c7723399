#!/usr/bin/env bash
# Builds the image and brings the stack up: three NATS JetStream nodes in a
# cluster and the ledger system on top, with the stream replicated three
# times. The API and pages listen on http://127.0.0.1:${SAL_HTTP_PORT:-8080}.
# The first start prints the demo credentials: docker-compose logs sal
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/build.sh
docker-compose up -d
echo "waiting for the stack to be healthy..."
for _ in $(seq 1 60); do
  if [ "$(docker inspect -f '{{.State.Health.Status}}' "$(docker-compose ps -q sal)" 2>/dev/null)" = healthy ]; then
    docker-compose ps
    echo "up: http://127.0.0.1:${SAL_HTTP_PORT:-8080}/  (credentials: docker-compose logs sal | grep -A6 'Demo credentials')"
    exit 0
  fi
  sleep 2
done
docker-compose ps
docker-compose logs --tail 50
echo "the stack did not become healthy in 120 s" >&2
exit 1
