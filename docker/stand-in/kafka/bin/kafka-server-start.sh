#!/usr/bin/env bash
# CI's stand-in for the Kafka release's bin/kafka-server-start.sh: the broker
# (kafka.Kafka) with the release's 1 GB heap unless KAFKA_HEAP_OPTS says
# otherwise, logging INFO to stdout (config/log4j.properties for Kafka 3,
# config/log4j2.properties for Kafka 4).
set -euo pipefail
[[ $# -ge 1 ]] || {
	echo "USAGE: $0 [-daemon] server.properties [--override property=value]*" >&2
	exit 1
}
home=${KAFKA_HOME:-/opt/kafka}
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}
export KAFKA_LOG4J_OPTS=${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:$home/config/log4j.properties -Dlog4j2.configurationFile=$home/config/log4j2.properties}
exec "$(dirname "${BASH_SOURCE[0]}")/kafka-run-class.sh" -name kafkaServer kafka.Kafka "$@"
