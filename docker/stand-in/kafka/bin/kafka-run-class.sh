#!/usr/bin/env bash
# CI's stand-in for the Kafka release's bin/kafka-run-class.sh (see
# Dockerfile.kafka): runs CLASS from the jars Maven Central serves for the
# same release, with the release's defaults: KAFKA_HEAP_OPTS (256 MB for a
# tool), KAFKA_LOG4J_OPTS (tools log WARN to stderr; Kafka 3 reads the log4j
# file, Kafka 4 the log4j 2 one) and KAFKA_OPTS.
#
#   kafka-run-class.sh [-daemon] [-name NAME] CLASS [ARGS]
set -euo pipefail

home=${KAFKA_HOME:-/opt/kafka}
while [[ ${1:-} == -daemon || ${1:-} == -name || ${1:-} == -loggc ]]; do
	case $1 in
	-name) shift 2 ;;
	*) shift ;;
	esac
done
[[ $# -gt 0 ]] || {
	echo "USAGE: $0 [-daemon] [-name servicename] [-loggc] classname [opts]" >&2
	exit 1
}
# shellcheck disable=SC2206 # the release splits these variables on spaces too
heap=(${KAFKA_HEAP_OPTS:--Xmx256M})
# shellcheck disable=SC2206
log4j=(${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:$home/config/tools-log4j.properties -Dlog4j2.configurationFile=$home/config/tools-log4j2.properties})
# shellcheck disable=SC2206
opts=(${KAFKA_OPTS:-})
# shellcheck disable=SC2206
jvm=(${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true})
exec java "${heap[@]}" "${jvm[@]}" -Dkafka.logs.dir="$home/logs" "${log4j[@]}" "${opts[@]}" \
	-cp "$home/libs/*" "$@"
