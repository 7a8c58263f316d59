#!/usr/bin/env bash
# CI's stand-in for the Kafka release's bin/kafka-console-producer.sh (see kafka-run-class.sh).
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
class=$("$here/stand-in-class" kafka.tools.ConsoleProducer org.apache.kafka.tools.ConsoleProducer)
exec "$here/kafka-run-class.sh" "$class" "$@"
