//! Group mode (`consumer --subscribe --group G`): consumers share the
//! partitions through Kafka's group protocol, with their checkpoints on HDFS.
//! On a three-node KRaft cluster, three members go through a SIGKILL, a
//! SIGSTOP past the group's session timeout and a newcomer, and the committed
//! output equals the topic, record for record; and a member paused in the
//! middle of a commit while the group gave its partition to another cannot
//! commit over its successor when it wakes (run with `P7_NO_FENCING=1` to see
//! that test fail).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use local_stack::Tally;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use topic::KafkaSettings;

/// A group member on `brokers`, batches of `batch` records.
fn member(topic: &str, output: &Output, group: &str, brokers: &str, batch: u32) -> Command {
    let mut command = consumer_command(topic, output, &[]);
    command
        .args(["--subscribe", "--group", group, "--batch-records"])
        .arg(batch.to_string())
        .env("P7_BROKERS", brokers)
        .env("RUST_LOG", "info");
    command
}

/// The worker of `child` once it is running.
async fn running_worker(child: &Child) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(worker) = worker_of(child.id()) {
            return worker;
        }
        assert!(Instant::now() < deadline, "the consumer has no worker");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The offsets group `group` has committed for `topic`'s `partitions`.
fn group_offsets(settings: &KafkaSettings, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = settings
        .assigned_consumer_config(group)
        .create()
        .expect("a client for the group's offsets");
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("the group's committed offsets");
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ => -1,
            },
        )
        .collect()
}

/// Waits until every partition's checkpoint is past `since`; where they are then.
async fn all_moving(output: &Output, since: [i64; 4]) -> [i64; 4] {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut now = [0; 4];
        for (p, offset) in now.iter_mut().enumerate() {
            *offset = output.committed_offset(p as i32).await;
        }
        if now.iter().zip(&since).all(|(now, since)| now > since) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "partitions stuck at {now:?} (from {since:?}):\n{}",
            output.log_tail(60)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every partition's committed records against the topic's, as one tally.
async fn tally(settings: &KafkaSettings, topic: &str, output: &Output, name: &str) -> Tally {
    let mut expected = Vec::new();
    let mut committed = Vec::new();
    for p in 0..4 {
        let key_of = |(offset, r): (usize, &batch_store::Record)| (p, offset as i64, key(r));
        expected.extend(
            topic_records_on(settings, topic, p)
                .iter()
                .enumerate()
                .map(key_of),
        );
        committed.extend(output.committed(p).await.iter().enumerate().map(key_of));
    }
    Tally::of(expected, committed).report(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_share_the_partitions_through_a_kill_a_long_pause_and_a_newcomer() {
    const ROWS: u64 = 6000;
    let cluster = local_stack::PrivateBroker::cluster(3);
    let brokers = cluster.brokers();
    let settings = KafkaSettings::new(brokers.clone());
    let topic = unique("group-mode");
    let group = unique("etl");
    let producing = produce_on(settings.clone(), 3, &topic, ROWS, Duration::from_millis(5)).await;
    let output = Output::with_hdfs_checkpoints();
    let start = || -> Child {
        member(&topic, &output, &group, &brokers, 40)
            .spawn()
            .expect("spawn a member")
    };

    let mut members = Running(vec![start(), start()]);
    let committed = all_moving(&output, [0; 4]).await;
    // The first member dies at once (SIGKILL: its supervisor takes the
    // worker with it); its partitions move once its session times out.
    members.0[0].kill().unwrap();
    members.0[0].wait().unwrap();
    // It comes back, and a newcomer joins.
    members.0[0] = start();
    members.0.push(start());
    // Once the group has settled, every partition moves on.
    tokio::time::sleep(topic::GROUP_SESSION_TIMEOUT).await;
    all_moving(&output, committed).await;
    // Then the second member stops answering for longer than the group's
    // session timeout, and goes on as if nothing happened.
    let paused = running_worker(&members.0[1]).await;
    local_stack::signal(paused, "STOP");
    tokio::time::sleep(topic::GROUP_SESSION_TIMEOUT * 2).await;
    local_stack::signal(paused, "CONT");

    producing.await.unwrap();
    let ends: Vec<i64> = (0..4)
        .map(|p| topic_records_on(&settings, &topic, p).len() as i64)
        .collect();
    assert_eq!(ends.iter().sum::<i64>(), ROWS as i64);
    for (p, end) in ends.iter().enumerate() {
        output
            .wait_for_offset(p as i32, *end, Duration::from_secs(180))
            .await;
    }
    // Lag tools see it too: the group's offsets reach every partition's end.
    let deadline = Instant::now() + Duration::from_secs(30);
    while group_offsets(&settings, &group, &topic, 4) != ends {
        assert!(
            Instant::now() < deadline,
            "the group's offsets {:?}, not the ends {ends:?}:\n{}",
            group_offsets(&settings, &group, &topic, 4),
            output.log_tail(80)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // And Kafka's own tool shows every partition with a live owner and no lag.
    let table = describe_group(&brokers, &group);
    for (p, end) in ends.iter().enumerate() {
        let row: Vec<&str> = table
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.len() >= 7 && cols[1] == topic && cols[2] == p.to_string())
            .unwrap_or_else(|| panic!("no row for partition {p}:\n{table}"));
        assert_eq!(row[3], end.to_string(), "{table}");
        assert_eq!(row[5], "0", "{table}");
        assert_ne!(row[6], "-", "partition {p} has no owner:\n{table}");
    }
    for child in &mut members.0 {
        terminate(child, &output);
    }

    let tally = tally(&settings, &topic, &output, "group-mode").await;
    assert!(tally.exact(), "{tally:?}\n{}", output.log_tail(80));
    // Partitions did change hands: some partition has had more than one owner.
    let store = output.store();
    let claims = store.list_dirs("checkpoints").await.unwrap();
    assert!(
        claims.iter().any(|d| !d.ends_with(".owner-1")),
        "no partition changed hands: {claims:?}"
    );
    let log = output.log();
    assert!(log.contains("taken away by the group"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_paused_mid_commit_cannot_commit_over_its_successor() {
    const ROWS: usize = 600;
    let topic = one_partition_of("group-fencing", ROWS).await;
    let brokers = local_stack::brokers();
    let group = unique("etl");
    let output = Output::with_hdfs_checkpoints();
    let expected = topic_records(&topic, 0);

    // A stops itself with its third batch's temp file written and not yet
    // renamed (batches 0 and 1 committed); should it get through that
    // commit, it dies at the next one.
    let mut first = member(&topic, &output, &group, &brokers, 50);
    first
        .env("P7_PAUSE_POINT", "after-temp-file@3")
        .env("P7_CRASH_POINT", "after-temp-file@4")
        .stderr(Stdio::piped());
    let mut first = Running(vec![first.spawn().unwrap()]);
    let worker = paused_worker(&first.0[0]).await;
    assert_eq!(output.committed_offset(0).await, 100);

    // B joins; once A's session has timed out, the group gives B the
    // partition, and B commits it to its end in batches of another size.
    let mut second = Running(vec![member(&topic, &output, &group, &brokers, 30)
        .spawn()
        .unwrap()]);
    output
        .wait_for_offset(0, ROWS as i64, Duration::from_secs(120))
        .await;

    // A wakes up in the middle of its commit, then has time to do harm.
    local_stack::signal(worker, "CONT");
    tokio::time::sleep(Duration::from_secs(5)).await;
    terminate(&mut second.0[0], &output);
    let child = &mut first.0[0];
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    local_stack::wait_for_exit(child, Duration::from_secs(60))
        .expect("the first member did not stop");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();

    let committed = output.committed(0).await;
    let keys = |records: &[batch_store::Record]| {
        records
            .iter()
            .enumerate()
            .map(|(offset, r)| (0, offset as i64, key(r)))
            .collect::<Vec<_>>()
    };
    let tally = Tally::of(keys(&expected), keys(&committed)).report("group-fencing");
    assert!(tally.exact(), "{tally:?}; the first member said:\n{stderr}");
    assert!(
        stderr.contains("was fenced") && !stderr.contains("crashing on purpose"),
        "the first member was not fenced:\n{stderr}"
    );
}

#[test]
fn group_mode_needs_its_checkpoints_on_hdfs_and_no_partition_numbers() {
    let output = Output::new(true);
    let mut local = member("any-topic", &output, "g", &local_stack::brokers(), 10);
    local.stderr(Stdio::piped());
    let (ok, stderr) = run_to_exit(local, Duration::from_secs(30));
    assert!(!ok);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("--subscribe needs --checkpoint-dir on HDFS"),
        "{stderr}"
    );

    let mut numbered = consumer_command("any-topic", &output, &[0]);
    numbered.arg("--subscribe");
    let (ok, stderr) = run_to_exit(numbered, Duration::from_secs(30));
    assert!(!ok);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn group_members_keep_the_stats_on_hdfs_exactly_once() {
    const ROWS: u64 = 1600;
    let topic = unique("group-stats");
    let producing = produce(&topic, ROWS, Duration::from_millis(3)).await;
    let output = Output::new(true);
    let stats_dir = format!("{}/stats", output.store_location);
    let group = unique("stats");
    let start = || -> Child {
        let mut command = bare_consumer_command(&topic, &output, &[]);
        command
            .args(["--subscribe", "--group", &group, "--stats", "--stats-dir"])
            .arg(&stats_dir)
            .args(["--batch-records", "30"])
            .env("RUST_LOG", "info");
        command.spawn().expect("spawn a member")
    };
    let mut members = Running(vec![start(), start()]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    members.0[0].kill().unwrap();
    members.0[0].wait().unwrap();
    members.0[0] = start();
    producing.await.unwrap();

    let dir = batch_store::CheckpointDir::open(&stats_dir).unwrap();
    let load = |p: i32| {
        let dir = dir.clone();
        async move {
            consumer::stats::PartitionStats::load(&dir, p)
                .await
                .expect("a readable stats file")
                .unwrap_or_default()
        }
    };
    for p in 0..4 {
        let records = topic_records(&topic, p);
        let deadline = Instant::now() + Duration::from_secs(120);
        while load(p).await.offset != records.len() as i64 {
            assert!(
                Instant::now() < deadline,
                "partition {p}: stats at offset {}, not {}:\n{}",
                load(p).await.offset,
                records.len(),
                output.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let stats = load(p).await;
        let kept: std::collections::BTreeMap<_, _> = stats
            .stations
            .iter()
            .map(|(station, s)| (station.clone(), common::stats::summary(s)))
            .collect();
        assert_eq!(kept, common::stats::expected(&records), "partition {p}");
    }
    for child in &mut members.0 {
        terminate(child, &output);
    }
}
