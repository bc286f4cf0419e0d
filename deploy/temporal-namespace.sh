#!/bin/sh
# Registers the namespace paysaga runs in, unless it exists (run by the temporal-namespace job).
set -eu

: "${TEMPORAL_ADDRESS:?}"
NAMESPACE="${NAMESPACE:-default}"
RETENTION="${RETENTION:-30d}"

until temporal operator cluster health --address "$TEMPORAL_ADDRESS"; do
    echo "waiting for Temporal at $TEMPORAL_ADDRESS"
    sleep 2
done
if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" >/dev/null 2>&1; then
    echo "namespace $NAMESPACE exists"
else
    temporal operator namespace create --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" --retention "$RETENTION"
fi
