"""A producer written the way the course's is: KafkaProducer(acks='all',
retries=10), the key the station id encoded as UTF-8, the value
Report.SerializeToString(), kafka-python's default partitioner. Reads one
JSON object per line from stdin ({"station_id", "date", "degrees"}).

python course_producer.py BROKER TOPIC < readings.jsonl
"""

import json
import sys

from kafka import KafkaProducer

import report_pb2

broker, topic = sys.argv[1], sys.argv[2]
producer = KafkaProducer(bootstrap_servers=[broker], acks="all", retries=10)
sent = 0
for line in sys.stdin:
    row = json.loads(line)
    report = report_pb2.Report(station_id=row["station_id"], date=row["date"], degrees=row["degrees"])
    producer.send(topic, key=row["station_id"].encode("utf-8"), value=report.SerializeToString())
    sent += 1
producer.flush()
producer.close()
print(f"sent {sent}")
