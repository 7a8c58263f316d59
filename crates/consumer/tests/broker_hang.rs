//! The broker stops answering (frozen: it keeps its connections open and
//! replies to nothing; or its packets dropped on loopback) under every running sink
//! (`consumer 0`, `consumer --stats 0`, `collector`): none hangs in a call,
//! their Kafka clients report the silence within the socket timeout, and once
//! the broker answers again each carries on without a restart, exactly once.
//!
//! This freezes the shared stack's broker, so it holds the stack exclusively
//! (`local_stack::exclusive_stack`).

mod common;

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use common::archive::{assert_exactly_once, Archive};
use common::stats::{expected, load, stats_command, summary};
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_stops_answering_is_ridden_out_exactly_once() {
    broker_silent_then_back("pause-service", &["resume-service"]).await;
}

/// The link to the broker cut for real: every packet to and from its port
/// dropped (new connections hang in their handshake; nothing is refused).
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_whose_packets_are_dropped_is_ridden_out_exactly_once() {
    broker_silent_then_back("cut-link", &["mend-links"]).await;
}

/// `silence NODE` (a `scripts/stack` command) makes the broker stop
/// answering, `back` (with NODE appended) undoes it; every sink's log then
/// reports the silence: its Kafka client's warning that it cannot reach the
/// broker (librdkafka's timeouts and "all brokers down", said once).
async fn broker_silent_then_back(silence: &str, back: &[&str]) {
    let reported = format!("cannot reach the broker at {}", local_stack::brokers());
    let _stack = local_stack::exclusive_stack();
    let topic = one_partition_of("broker-hang", 50).await;
    let output = Output::new(true);
    let args = ["--batch-records", "5", "-X", "socket.timeout.ms=5000"];
    let mut child = consuming_partition_0(&topic, &output, &args, 50).await;
    let stats_output = Output::new(false);
    let mut stats = stats_command(&topic, &stats_output, &[0]);
    stats.args(["--batch-records", "5", "-X", "socket.timeout.ms=5000"]);
    let mut stats = Running(vec![stats.spawn().expect("start the stats consumer")]);
    let archive = Archive::new();
    let mut collector = archive.command(&topic);
    collector.args([
        "--batch-size",
        "5",
        "--batch-timeout",
        "0.2",
        "-X",
        "socket.timeout.ms=5000",
    ]);
    let mut collector = Running(vec![collector.spawn().expect("start the collector")]);
    // The stats file and the archive at `offset`, within `timeout`.
    let others_at = |offset: i64, timeout: Duration| {
        wait_until(
            &format!("the stats consumer at offset {offset}"),
            timeout,
            || load(&stats_output.checkpoint_dir, 0).map_or(0, |s| s.offset) == offset,
            || stats_output.log(),
        );
        let (archive, topic) = (&archive, &topic);
        async move {
            archive
                .wait_for_offsets(topic, &BTreeMap::from([(0, offset)]), timeout)
                .await;
        }
    };
    others_at(50, Duration::from_secs(60)).await;

    let node = std::env::var("P7_BROKER_NODE").unwrap_or_else(|_| "kafka-1".into());
    local_stack::stack(&[silence, &node]);
    let back: Vec<&str> = back.iter().copied().chain([node.as_str()]).collect();
    let resume = local_stack::restore(&back);
    let paused = Instant::now();
    wait_until(
        "the silence reported",
        Duration::from_secs(20),
        || {
            [output.log(), stats_output.log(), archive.log()]
                .iter()
                .all(|log| log.contains(&reported))
        },
        || [output.log(), stats_output.log(), archive.log()].join("\n---\n"),
    );
    eprintln!(
        "measured: {silence}: silence reported {:.1} s after the broker went silent",
        paused.elapsed().as_secs_f64()
    );
    for (sink, running) in [
        ("consumer", &mut child),
        ("stats", &mut stats),
        ("collector", &mut collector),
    ] {
        assert!(
            running.0[0].try_wait().unwrap().is_none(),
            "the {sink} died"
        );
    }
    drop(resume);
    let resumed = Instant::now();

    send(&topic, 1, &readings(50, 50)).await;
    output
        .wait_for_offset(0, 100, Duration::from_secs(120))
        .await;
    others_at(100, Duration::from_secs(120)).await;
    eprintln!(
        "measured: {silence}: every sink caught up {:.1} s after the broker answered again",
        resumed.elapsed().as_secs_f64()
    );
    terminate(&mut child.0[0], &output);
    terminate(&mut stats.0[0], &stats_output);
    let status = local_stack::signal_and_wait(&mut collector.0[0], "TERM");
    assert!(
        status.success(),
        "the collector: {status}\n{}",
        archive.log()
    );

    let records = topic_records(&topic, 0);
    assert_eq!(output.committed(0).await, records);
    let state = load(&stats_output.checkpoint_dir, 0).expect("a stats file");
    let got: BTreeMap<String, (u64, f64, String, String)> = state
        .stations
        .iter()
        .map(|(station, stats)| (station.clone(), summary(stats)))
        .collect();
    assert_eq!(
        got,
        expected(&records),
        "the stats counted a record twice or not at all"
    );
    assert_exactly_once(&archive, &topic, 1);
}
