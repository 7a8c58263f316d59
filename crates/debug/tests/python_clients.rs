//! Our `debug` next to the course's own Python debug consumer (kafka-python
//! 2.0.2 and the newest 2.x, the Report class protoc generates from
//! proto/report.proto), both reading what our producer wrote: they print the
//! same lines.

use std::process::{Command, Stdio};
use std::time::Duration;

use topic::{KafkaSettings, TopicSpec};

const ROWS: u64 = 200;

/// The first line-count lines a program prints, waiting up to `timeout`.
fn lines_of(mut command: Command, count: usize, timeout: Duration) -> Vec<String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the program");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(count)
            .collect::<Vec<_>>()
    });
    let deadline = std::time::Instant::now() + timeout;
    while !reader.is_finished() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} printed fewer than {count} lines in {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    reader.join().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_course_python_debug_consumer_prints_exactly_our_lines() {
    let topic = local_stack::unique_name("python-debug");
    let settings = KafkaSettings::new(local_stack::brokers());
    let options = producer::ProducerOptions::recreating(TopicSpec::course(&topic));
    let source = producer::Source::Generator {
        delay: Duration::ZERO,
        rows: Some(ROWS),
    };
    let summary = producer::run(
        &settings,
        &options,
        source,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("produce");
    assert_eq!(summary.delivered, ROWS);

    let mut ours = Command::new(env!("CARGO_BIN_EXE_debug"));
    ours.args(["--topic", &topic, "--from-beginning", "--group"])
        .arg(local_stack::unique_name("debug-ours"))
        .env("P7_BROKERS", local_stack::brokers());
    let timeout = Duration::from_secs(60);
    let ours = lines_of(ours, ROWS as usize, timeout);
    assert_eq!(ours.len(), ROWS as usize);
    let module = local_stack::python_report_module();
    for (version, pythonpath) in local_stack::kafka_python_versions(module.path()) {
        let mut python = Command::new(local_stack::python_clients());
        python
            .arg(local_stack::python_fixture("course_debug.py"))
            .args([&local_stack::brokers(), &topic])
            .arg(local_stack::unique_name("debug-python"))
            .args([&ROWS.to_string(), "earliest"])
            .env("PYTHONPATH", pythonpath);
        let mut theirs = lines_of(python, ROWS as usize, timeout);
        // Partitions interleave differently; within one both are in offset order.
        let in_partition = |lines: &[String], p: i32| -> Vec<String> {
            let tail = format!("'partition': {p}}}");
            lines
                .iter()
                .filter(|l| l.ends_with(&tail))
                .cloned()
                .collect()
        };
        for p in 0..4 {
            assert_eq!(
                in_partition(&ours, p),
                in_partition(&theirs, p),
                "kafka-python {version}, partition {p}"
            );
        }
        let mut sorted = ours.clone();
        sorted.sort();
        theirs.sort();
        assert_eq!(sorted, theirs, "kafka-python {version}");
    }
}
