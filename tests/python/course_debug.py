"""The course's debug consumer, written the way students do: group `debug`,
subscribe, decode each value with the Report class protoc generated from
proto/report.proto, print a dict per message. Stops after COUNT lines.

python course_debug.py BROKER TOPIC GROUP COUNT [earliest|latest]
"""

import sys

from kafka import KafkaConsumer

import report_pb2

broker, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start = sys.argv[5] if len(sys.argv) > 5 else "latest"
consumer = KafkaConsumer(bootstrap_servers=[broker], group_id=group, auto_offset_reset=start)
consumer.subscribe([topic])
printed = 0
while printed < count:
    batch = consumer.poll(1000)
    for messages in batch.values():
        for msg in messages:
            report = report_pb2.Report.FromString(msg.value)
            print(
                {
                    "station_id": report.station_id,
                    "date": report.date,
                    "degrees": report.degrees,
                    "partition": msg.partition,
                },
                flush=True,
            )
            printed += 1
consumer.close()
