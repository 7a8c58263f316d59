#!/usr/bin/env bash
# CI's stand-in for the Kafka release's bin/kafka-storage.sh (see kafka-run-class.sh).
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
class=$("$here/stand-in-class" kafka.tools.StorageTool org.apache.kafka.tools.StorageTool)
exec "$here/kafka-run-class.sh" "$class" "$@"
