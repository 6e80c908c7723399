#!/usr/bin/env bash
# Builds the static binaries and the sal:local image (FROM scratch).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p deploy/bin
CGO_ENABLED=0 go build -trimpath -o deploy/bin/sal ./cmd/sal
# nats-server at exactly the version go.mod pins.
CGO_ENABLED=0 go build -trimpath -o deploy/bin/nats-server github.com/nats-io/nats-server/v2
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt deploy/bin/ca-certificates.crt
else
  : > deploy/bin/ca-certificates.crt
fi
# Mount points of the volumes, owned by the image's unprivileged user.
rm -rf deploy/bin/rootfs
mkdir -p deploy/bin/rootfs/data deploy/bin/rootfs/keys deploy/bin/rootfs/root-key deploy/bin/rootfs/tokens
docker build -q -t sal:local deploy
