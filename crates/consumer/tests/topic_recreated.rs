//! The producer restarted while consumers run: it deletes and recreates the
//! topic (as the course's producer does at every start), so a running
//! consumer's position is past the end of the new partition. Each consumer
//! stops with one line saying so (never by a signal), and what it had
//! committed stays exactly as it was.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn consumers_stop_with_one_line_when_the_producer_recreates_their_topic() {
    let topic = unique("recreated");
    let output = Output::new(false);
    produce(&topic, 400, Duration::from_millis(1)).await.await.unwrap();
    let ends: Vec<i64> = (0..4).map(|p| topic_records(&topic, p).len() as i64).collect();
    // A log per process: four processes writing one file interleave lines.
    let logs = tempfile::tempdir().unwrap();
    let log_of = |p: usize| logs.path().join(format!("consumer-{p}.log"));
    let mut consumers: Vec<Child> = (0..4)
        .map(|p| {
            consumer_command(&topic, &output, &[p])
                .stderr(local_stack::append_log(&log_of(p as usize)))
                .spawn()
                .unwrap()
        })
        .collect();
    let mut before = Vec::new();
    for partition in 0..4 {
        output
            .wait_for_offset(partition, ends[partition as usize], Duration::from_secs(60))
            .await;
        before.push(output.committed(partition).await);
    }

    // The producer's next start: delete, settle, create, and fewer rows than
    // before, so every partition ends before the consumers' positions.
    produce(&topic, 100, Duration::from_millis(1)).await.await.unwrap();
    for (partition, child) in consumers.iter_mut().enumerate() {
        let status = local_stack::wait_for_exit(child, Duration::from_secs(60)).unwrap_or_else(|| {
            panic!(
                "consumer {partition} kept running after the topic was recreated:\n{}",
                std::fs::read_to_string(log_of(partition)).unwrap_or_default()
            )
        });
        assert_eq!(
            (status.code(), status.signal()),
            (Some(1), None),
            "consumer {partition}:\n{}",
            std::fs::read_to_string(log_of(partition)).unwrap_or_default()
        );
    }
    for partition in 0..4 {
        let log = std::fs::read_to_string(log_of(partition)).unwrap();
        assert!(!log.contains("WARN"), "only the one line, no warnings:\n{log}");
        let line = format!(
            "consumer: partition {partition}: the broker no longer has offset {}",
            ends[partition]
        );
        let last = log.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&line) && last.contains("deleted and recreated") && last.ends_with("--reset"),
            "{line}\n{log}"
        );
        // Committed output and checkpoints are what they were.
        assert_eq!(output.committed(partition as i32).await, before[partition]);
        assert_eq!(output.committed_offset(partition as i32).await, ends[partition]);
    }
}
