#!/usr/bin/env bash
# CI's stand-in for the Kafka release's bin/kafka-topics.sh (see kafka-run-class.sh).
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
class=$("$here/stand-in-class" kafka.admin.TopicCommand org.apache.kafka.tools.TopicCommand)
exec "$here/kafka-run-class.sh" "$class" "$@"
