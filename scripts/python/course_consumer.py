"""A consumer of one partition written the way the course's Python solutions
are, for scripts/bench to compare ours with: kafka-python, `poll(1000)`, one
Parquet file per poll written with pyarrow to HDFS as `.tmp` and then renamed,
and a JSON checkpoint `{"batch_id", "offset"}` per partition, replaced after
each file. Its HDFS client is the `hdfs-native` Python package (libhdfs is
not available here). It stops once a poll has returned nothing for `--idle`
seconds and prints one line: records, seconds from start to the last commit.

python course_consumer.py PARTITION --brokers B --topic T --hdfs URL --base DIR
    --checkpoint-dir DIR [--idle SECONDS]
"""

import argparse
import json
import os
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
from hdfs_native import Client, WriteOptions
from kafka import KafkaConsumer, TopicPartition

import report_pb2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("partition", type=int)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--hdfs", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--checkpoint-dir", required=True)
    parser.add_argument("--idle", type=float, default=2.0)
    args = parser.parse_args()

    started = time.time()
    hdfs = Client(args.hdfs)
    consumer = KafkaConsumer(bootstrap_servers=[args.brokers])
    tp = TopicPartition(args.topic, args.partition)
    consumer.assign([tp])

    path = os.path.join(args.checkpoint_dir, f"partition-{args.partition}.json")
    if os.path.exists(path):
        with open(path) as f:
            checkpoint = json.load(f)
        batch_id = checkpoint["batch_id"] + 1
        consumer.seek(tp, checkpoint["offset"])
    else:
        batch_id = 0
        consumer.seek_to_beginning(tp)

    records = 0
    last_commit = started
    idle_since = time.time()
    while True:
        batch = consumer.poll(1000)
        messages = batch.get(tp, [])
        if not messages:
            if time.time() - idle_since > args.idle:
                break
            continue
        idle_since = time.time()

        rows = {"station_id": [], "date": [], "degrees": []}
        for message in messages:
            report = report_pb2.Report.FromString(message.value)
            rows["station_id"].append(report.station_id)
            rows["date"].append(report.date)
            rows["degrees"].append(report.degrees)
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table(rows), sink)

        final = f"{args.base}/data/partition-{args.partition}-batch-{batch_id}.parquet"
        tmp = final + ".tmp"
        with hdfs.create(tmp, WriteOptions(overwrite=True, create_parent=True)) as f:
            f.write(sink.getvalue().to_pybytes())
        hdfs.rename(tmp, final, overwrite=True)

        checkpoint = {"batch_id": batch_id, "offset": messages[-1].offset + 1}
        with open(path + ".tmp", "w") as f:
            json.dump(checkpoint, f)
        os.replace(path + ".tmp", path)

        records += len(messages)
        batch_id += 1
        last_commit = time.time()

    consumer.close()
    print(f"partition {args.partition}: {records} records in {last_commit - started:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
