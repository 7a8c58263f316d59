//! The tools graders and TAs check our output with: Kafka's own command-line
//! tools (from the Apache Kafka jars, through `scripts/stack kafka-tool`) and
//! the Hadoop shell (`scripts/stack hdfs`), with pyarrow reading the batch
//! files the Hadoop shell copied out.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::*;

fn kafka_tool(class: &str, args: &[&str]) -> String {
    let brokers = local_stack::brokers();
    let mut all = vec!["kafka-tool", class, "--bootstrap-server", &brokers];
    all.extend_from_slice(args);
    local_stack::stack_output(&all)
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_tools_see_the_topic_the_records_and_our_position_with_its_lag() {
    let topic = unique("kafka-tools");
    produce(&topic, 400, Duration::ZERO).await.await.unwrap();
    let group = unique("tools-group");
    let output = Output::new(false);
    let mut command = consumer_command(&topic, &output, &[0, 1, 2, 3]);
    command.args(["--exit-when-idle", "2", "--group", &group]);
    let (ok, stderr) = run_to_exit(command, Duration::from_secs(120));
    assert!(ok, "{stderr}");
    // Records the consumer has not seen: the lag the group shows.
    send(&topic, 4, &readings(400, 100)).await;

    let described = kafka_tool(
        "kafka.admin.TopicCommand",
        &["--describe", "--topic", &topic],
    );
    let partitions = described
        .lines()
        .filter(|l| {
            l.trim_start()
                .starts_with(&format!("Topic: {topic}\tPartition:"))
        })
        .count();
    assert_eq!(partitions, 4, "{described}");

    let printed = kafka_tool(
        "kafka.tools.ConsoleConsumer",
        &[
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "500",
            "--property",
            "print.key=true",
            "--timeout-ms",
            "30000",
        ],
    );
    let keys: BTreeMap<String, usize> = printed
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|k| k.starts_with("Station"))
        .fold(BTreeMap::new(), |mut m, k| {
            *m.entry(k.to_string()).or_default() += 1;
            m
        });
    assert_eq!(keys.values().sum::<usize>(), 500, "{printed}");
    assert_eq!(keys.len(), 10);

    let table = describe_group(&local_stack::brokers(), &group);
    for p in 0..4 {
        let row: Vec<&str> = table
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| {
                cols.len() >= 6 && cols[0] == group && cols[1] == topic && cols[2] == p.to_string()
            })
            .unwrap_or_else(|| panic!("no row for partition {p}:\n{table}"));
        let committed = output.committed_offset(p).await;
        let end = topic_records(&topic, p).len() as i64;
        assert_eq!(
            row[3],
            committed.to_string(),
            "current offset of {p}:\n{table}"
        );
        assert_eq!(row[4], end.to_string(), "log end of {p}:\n{table}");
        assert_eq!(
            row[5],
            (end - committed).to_string(),
            "lag of {p}:\n{table}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hadoop_shell_lists_and_copies_our_batches_and_pyarrow_reads_them() {
    let topic = unique("hadoop-shell");
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, 120)).await;
    let output = Output::new(true);
    let mut command = consumer_command(&topic, &output, &[0]);
    command.args(["--exit-when-idle", "2", "--batch-records", "50"]);
    let (ok, stderr) = run_to_exit(command, Duration::from_secs(120));
    assert!(ok, "{stderr}");
    let checkpoint = output.checkpoints().load(0).await.unwrap().unwrap();
    assert_eq!(checkpoint.batch_id, 2);

    let data = format!("{}/data", output.store_location);
    let listing = local_stack::stack_output(&["hdfs", "-ls", &data]);
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    assert_eq!(
        names,
        [
            "partition-0-batch-0.parquet",
            "partition-0-batch-1.parquet",
            "partition-0-batch-2.parquet"
        ],
        "{listing}"
    );
    let first = local_stack::stack_output(&[
        "hdfs",
        "-cat",
        &format!("{data}/partition-0-batch-0.parquet"),
    ]);
    assert!(first.starts_with("PAR1"), "not a Parquet file");

    let local = tempfile::tempdir().unwrap();
    local_stack::stack_output(&[
        "hdfs",
        "-copyToLocal",
        &format!("{data}/partition-0-batch-*.parquet"),
        &local.path().display().to_string(),
    ]);
    let read = Command::new(local_stack::python_readers())
        .arg("-c")
        .arg(
            "import glob, json, sys, pyarrow.parquet as pq\n\
             rows = []\n\
             for f in sorted(glob.glob(sys.argv[1] + '/*.parquet'), key=lambda f: int(f.rsplit('-', 1)[1].split('.')[0])):\n\
             \x20   rows += pq.read_table(f).to_pylist()\n\
             print(json.dumps(rows))",
        )
        .arg(local.path())
        .output()
        .expect("run pyarrow");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&read.stdout).unwrap();
    let expected: Vec<serde_json::Value> = topic_records(&topic, 0)
        .into_iter()
        .map(|r| serde_json::json!({"station_id": r.station_id, "date": r.date, "degrees": r.degrees}))
        .collect();
    assert_eq!(rows, expected);
}
