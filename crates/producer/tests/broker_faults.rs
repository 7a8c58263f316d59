//! The producer on a three-node KRaft cluster of the test's own (replication
//! 3, `min.insync.replicas=2`) while brokers fail under it: the leader of a
//! partition killed mid-stream, then two of the three nodes down at once.
//! Each case ends with the topic equal to the MySQL table, row id for row id.
//!
//! One test runs both cases on one cluster, one after the other: three more
//! JVMs are what two cores can carry next to the shared stack.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use topic::KafkaSettings;

/// Kills the producer if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The node leading `partition` of `topic`, once one does.
fn leader_of(settings: &KafkaSettings, topic: &str, partition: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(leader)) =
            topic::partition_leader(settings, topic, partition, Duration::from_secs(5))
        {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "partition {partition} of {topic} has no leader after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Records in the topic so far, or 0 while it or a leader is missing.
fn records_in(settings: &KafkaSettings, topic: &str) -> i64 {
    topic::end_offsets(settings, topic, Duration::from_secs(2)).map_or(0, |ends| ends.iter().sum())
}

fn wait_until_records(
    settings: &KafkaSettings,
    topic: &str,
    at_least: i64,
    producer: &mut Child,
    log: &std::path::Path,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while records_in(settings, topic) < at_least {
        assert!(
            producer.try_wait().unwrap().is_none(),
            "the producer exited before {at_least} records were in {topic}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(
            Instant::now() < deadline,
            "fewer than {at_least} records in {topic} after 120 s ({} seen):\n{}",
            records_in(settings, topic),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finish(mut producer: Running, log: &std::path::Path, rows: u64) -> String {
    let status = local_stack::wait_for_exit(&mut producer.0, Duration::from_secs(240));
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("the producer did not finish within 240 s:\n{text}"));
    assert!(status.success(), "producer: {status}\n{text}");
    assert!(text.contains(&format!("delivered={rows}")), "{text}");
    text
}

fn assert_topic_is_the_table(settings: &KafkaSettings, topic: &str, rows: u64, case: &str) {
    let found = topic_messages_on(settings, topic, 4);
    let tally =
        local_stack::Tally::of(1..=rows as i64, found.iter().map(|m| m.row_id)).report(case);
    assert!(tally.exact(), "{tally:?}");
    for message in &found {
        assert_eq!(
            message.partition,
            spec_partition(&message.key),
            "{message:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_producer_rides_out_a_killed_leader_and_waits_out_a_lost_quorum() {
    let cluster = local_stack::PrivateBroker::cluster(3);
    let settings = KafkaSettings::new(cluster.brokers());
    let dir = tempfile::tempdir().unwrap();

    // Case 1: SIGKILL the leader of partition 0 while the producer streams at
    // full speed; it goes on once a new leader is elected.
    // Enough that the kill lands mid-stream: 200,000 were once all sent
    // before it (the producer runs at about 300,000 rows/s here).
    const ROWS: u64 = 600_000;
    let (url, _database) = database_with_rows(ROWS).await;
    let topic = local_stack::unique_name("leader-killed");
    let log = dir.path().join("leader-killed.log");
    let mut producer = Running(
        producer_command(&topic, &url, &log)
            .args(["--replication", "3", "--exit-when-idle", "2"])
            .env("P7_BROKERS", cluster.brokers())
            .spawn()
            .unwrap(),
    );
    wait_until_records(&settings, &topic, 20_000, &mut producer.0, &log);
    let leader = leader_of(&settings, &topic, 0);
    let killed_at = Instant::now();
    cluster.stop_node(leader, true);
    let before = records_in(&settings, &topic);
    assert!(
        before < ROWS as i64 && producer.0.try_wait().unwrap().is_none(),
        "the producer had sent everything before node {leader} was killed; raise ROWS"
    );
    let text = finish(producer, &log, ROWS);
    eprintln!(
        "measured: node {leader} killed with {before} of {ROWS} records in; the producer finished {:.1} s later",
        killed_at.elapsed().as_secs_f64()
    );
    assert!(
        text.contains("the brokers acknowledge records again")
            || !text.contains("no record acknowledged"),
        "{text}"
    );
    assert_ne!(
        leader_of(&settings, &topic, 0),
        leader,
        "partition 0 kept a dead leader"
    );
    cluster.start_node(leader);
    assert_topic_is_the_table(&settings, &topic, ROWS, "leader killed");

    // Case 3: two of three nodes down. No write can reach two in-sync
    // replicas (nor the KRaft quorum): the producer holds the records, says
    // so, and delivers each one once the nodes return. New rows arrive in
    // MySQL while the nodes are down, as they do from the course generator.
    const FIRST_ROWS: u64 = 1_000;
    const MORE_ROWS: u64 = 19_000;
    let (url, database) = database_with_rows(FIRST_ROWS).await;
    let topic = local_stack::unique_name("two-down");
    let log = dir.path().join("two-down.log");
    let mut producer = Running(
        producer_command(&topic, &url, &log)
            .args(["--replication", "3"])
            .env("P7_BROKERS", cluster.brokers())
            .spawn()
            .unwrap(),
    );
    wait_until_records(&settings, &topic, FIRST_ROWS as i64, &mut producer.0, &log);
    let survivor = leader_of(&settings, &topic, 0);
    let downed: Vec<i32> = (1..=3).filter(|id| *id != survivor).collect();
    for id in &downed {
        cluster.stop_node(*id, true);
    }
    let down_at = Instant::now();
    let more = weather_generator::GeneratorOptions {
        delay: Duration::ZERO,
        limit: weather_generator::Limit::Rows(MORE_ROWS),
        bulk: true,
        bulk_rows: 1000,
        resume: true,
    };
    weather_generator::run(
        &database,
        &more,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("more rows");
    let stalled = "no record acknowledged for";
    let deadline = down_at + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(stalled) {
            break;
        }
        assert!(
            producer.0.try_wait().unwrap().is_none(),
            "the producer exited with two of three nodes down:\n{text}"
        );
        assert!(
            Instant::now() < deadline,
            "no '{stalled}' line 60 s after two nodes went down:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let said_after = down_at.elapsed();
    // Still waiting, not gone, some seconds later.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        producer.0.try_wait().unwrap().is_none(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let back_at = Instant::now();
    for id in &downed {
        cluster.start_node(*id);
    }
    let all = (FIRST_ROWS + MORE_ROWS) as i64;
    wait_until_records(&settings, &topic, all, &mut producer.0, &log);
    let delivered_after = back_at.elapsed();
    terminate(&mut producer.0, &log);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "measured: nodes {downed:?} down; the producer said so after {:.1} s; nodes back after {:.1} s; all delivered {:.1} s after that",
        said_after.as_secs_f64(),
        back_at.duration_since(down_at).as_secs_f64(),
        delivered_after.as_secs_f64()
    );
    eprintln!("case 3 log:\n{text}");
    assert!(text.contains(&format!("delivered={all}")), "{text}");
    assert!(
        text.contains("the brokers acknowledge records again"),
        "{text}"
    );
    assert_topic_is_the_table(&settings, &topic, all as u64, "two of three down");
}
