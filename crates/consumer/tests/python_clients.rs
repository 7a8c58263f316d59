//! The course's Python producer (kafka-python 2.0.2 and the newest 2.x,
//! `acks='all'`, `retries=10`, key = station as UTF-8, value =
//! `SerializeToString()`, kafka-python's default partitioner) feeds our
//! sinks: every record lands in the partition our producer would use, and
//! `consumer N`, `consumer --stats` and the collector each commit it once.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::archive::{assert_exactly_once, Archive};
use common::stats::{expected, load, stats_command, summary};
use common::*;
use report::partition_for_key;

const ROWS: usize = 400;

/// Sends `reports` through the course's Python producer.
fn python_produce(topic: &str, reports: &[report::Report], pythonpath: &std::ffi::OsStr) {
    let mut child = Command::new(local_stack::python_clients())
        .arg(local_stack::python_fixture("course_producer.py"))
        .args([&local_stack::brokers(), topic])
        .env("PYTHONPATH", pythonpath)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python producer");
    let mut stdin = child.stdin.take().unwrap();
    for r in reports {
        let line =
            serde_json::json!({"station_id": r.station_id, "date": r.date, "degrees": r.degrees});
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Python producer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("sent {}", reports.len())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_course_python_producer_sends_is_committed_once_by_every_sink() {
    let module = local_stack::python_report_module();
    for (version, pythonpath) in local_stack::kafka_python_versions(module.path()) {
        let topic = unique("python-producer");
        create_topic(&topic, 4).await;
        let sent = readings(0, ROWS);
        python_produce(&topic, &sent, &pythonpath);

        // The default partitioner is Java's murmur2, as ours.
        let mut in_topic = 0;
        for p in 0..4 {
            let records = topic_records(&topic, p);
            for record in &records {
                assert_eq!(
                    partition_for_key(record.station_id.as_bytes(), 4),
                    p,
                    "kafka-python {version}: {} in partition {p}",
                    record.station_id
                );
            }
            in_topic += records.len();
        }
        assert_eq!(in_topic, ROWS, "kafka-python {version}");

        // consumer N, the course form.
        let output = Output::new(true);
        let consumers: Vec<_> = (0..4)
            .map(|p| {
                let mut command = consumer_command(&topic, &output, &[p]);
                command.args(["--exit-when-idle", "2"]);
                command
            })
            .collect();
        for command in consumers {
            let (ok, stderr) = run_to_exit(command, Duration::from_secs(120));
            assert!(ok, "kafka-python {version}: {stderr}");
        }
        for p in 0..4 {
            assert_eq!(
                output.committed(p).await,
                topic_records(&topic, p),
                "kafka-python {version}, partition {p}"
            );
        }

        // consumer --stats.
        let stats_output = Output::new(false);
        let mut command = stats_command(&topic, &stats_output, &[0, 1, 2, 3]);
        command.args(["--exit-when-idle", "2"]);
        let (ok, stderr) = run_to_exit(command, Duration::from_secs(120));
        assert!(ok, "kafka-python {version}: {stderr}");
        for p in 0..4 {
            let got: BTreeMap<_, _> = load(&stats_output.checkpoint_dir, p)
                .expect("a stats file")
                .stations
                .iter()
                .map(|(station, s)| (station.clone(), summary(s)))
                .collect();
            assert_eq!(
                got,
                expected(&topic_records(&topic, p)),
                "kafka-python {version}, stats of partition {p}"
            );
        }

        // The collector.
        let archive = Archive::new();
        let mut command = archive.command(&topic);
        command.args(["--exit-when-idle", "2"]);
        let (ok, stderr) = run_to_exit(command, Duration::from_secs(120));
        assert!(ok, "kafka-python {version}: {stderr}");
        assert_exactly_once(&archive, &topic, 4);
    }
}

/// Runs the course-style Python consumer of `scripts/python` (the bench's)
/// on partition 0 until it has been idle for 2 s.
fn python_consume(topic: &str, output: &Output, module: &std::path::Path) {
    let (hdfs, base) = output
        .store_location
        .strip_prefix("hdfs://")
        .and_then(|rest| rest.split_once('/'))
        .expect("an HDFS store");
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/python/course_consumer.py");
    let out = Command::new(local_stack::python_clients())
        .arg(script)
        .args(["0", "--brokers", &local_stack::brokers(), "--topic", topic])
        .arg("--hdfs")
        .arg(format!("hdfs://{hdfs}"))
        .arg("--base")
        .arg(format!("/{base}"))
        .arg("--checkpoint-dir")
        .arg(&output.checkpoint_dir)
        .env("PYTHONPATH", module)
        .output()
        .expect("run the Python consumer");
    assert!(
        out.status.success(),
        "the Python consumer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn our_consume(topic: &str, output: &Output) {
    let mut command = consumer_command(topic, output, &[0]);
    command.args(["--exit-when-idle", "2"]);
    let (ok, stderr) = run_to_exit(command, Duration::from_secs(120));
    assert!(ok, "{stderr}");
}

/// The course's checkpoint format is ours (`{"batch_id", "offset"}`), so a
/// partition can be taken over in either direction: what one left, the
/// other continues, and the batches read back hold the partition once.
#[tokio::test(flavor = "multi_thread")]
async fn a_course_python_consumer_and_ours_resume_each_others_checkpoints() {
    let module = local_stack::python_report_module();
    for python_first in [false, true] {
        let topic = unique("python-resume");
        create_topic(&topic, 1).await;
        let output = Output::new(true);
        std::fs::create_dir_all(&output.checkpoint_dir).unwrap();
        send(&topic, 1, &readings(0, 1200)).await;
        if python_first {
            python_consume(&topic, &output, module.path());
        } else {
            our_consume(&topic, &output);
        }
        let first = output
            .checkpoints()
            .load(0)
            .await
            .unwrap()
            .expect("a checkpoint");
        assert_eq!(first.offset, 1200, "python first: {python_first}");
        send(&topic, 1, &readings(1200, 800)).await;
        if python_first {
            our_consume(&topic, &output);
        } else {
            python_consume(&topic, &output, module.path());
        }
        let last = output
            .checkpoints()
            .load(0)
            .await
            .unwrap()
            .expect("a checkpoint");
        assert_eq!(last.offset, 2000, "python first: {python_first}");
        assert!(last.batch_id > first.batch_id);
        assert_eq!(
            output.committed(0).await,
            topic_records(&topic, 0),
            "python first: {python_first}"
        );
    }
}
