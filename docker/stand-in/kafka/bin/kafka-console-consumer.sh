#!/usr/bin/env bash
# CI's stand-in for the Kafka release's bin/kafka-console-consumer.sh (see kafka-run-class.sh).
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
class=$("$here/stand-in-class" kafka.tools.ConsoleConsumer org.apache.kafka.tools.consumer.ConsoleConsumer)
exec "$here/kafka-run-class.sh" "$class" "$@"
