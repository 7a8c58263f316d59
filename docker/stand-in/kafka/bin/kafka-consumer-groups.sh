#!/usr/bin/env bash
# CI's stand-in for the Kafka release's bin/kafka-consumer-groups.sh (see kafka-run-class.sh).
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
class=$("$here/stand-in-class" kafka.admin.ConsumerGroupCommand org.apache.kafka.tools.consumer.group.ConsumerGroupCommand)
exec "$here/kafka-run-class.sh" "$class" "$@"
