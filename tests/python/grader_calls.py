"""The calls the course's grader makes against the broker, printed as one
JSON object: the topics `KafkaAdminClient.list_topics()` sees, the number of
partitions `describe_topics([TOPIC])` reports, and the keys a group-less
KafkaConsumer with auto_offset_reset='earliest' gets within 10 s.

python grader_calls.py BROKER TOPIC
"""

import json
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer

broker, topic = sys.argv[1], sys.argv[2]
admin = KafkaAdminClient(bootstrap_servers=[broker])
topics = admin.list_topics()
described = admin.describe_topics([topic])
partitions = len(described[0]["partitions"])
admin.close()

consumer = KafkaConsumer(topic, bootstrap_servers=[broker], auto_offset_reset="earliest")
keys = set()
deadline = time.time() + 10
while time.time() < deadline and len(keys) < 10:
    for messages in consumer.poll(1000).values():
        keys.update(m.key.decode("utf-8") for m in messages)
consumer.close()
print(json.dumps({"has_topic": topic in topics, "partitions": partitions, "keys": sorted(keys)}))
