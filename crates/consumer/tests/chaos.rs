//! Chaos: while the producer writes, consumers of all four partitions are
//! SIGKILLed at random moments and restarted, over and over. At the end the
//! committed batches of every partition hold exactly the records of the
//! partition: none missing, none twice, in offset order.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use local_stack::Tally;
use producer::{ProducerOptions, Source};
use tokio_util::sync::CancellationToken;
use topic::TopicSpec;

const ROWS: u64 = 3000;
const KILLS: usize = 24;

async fn chaos(on_hdfs: bool) {
    let topic = unique(if on_hdfs { "chaos-hdfs" } else { "chaos-local" });
    let output = Output::new(on_hdfs);
    let mut rng = Chaos::new();

    let options = ProducerOptions::recreating(TopicSpec::course(&topic));
    let producing = {
        let settings = settings();
        tokio::spawn(async move {
            let source = Source::Generator {
                delay: Duration::from_millis(2),
                rows: Some(ROWS),
            };
            producer::run(&settings, &options, source, &CancellationToken::new()).await
        })
    };

    let start = |partition: i32| -> Child {
        let mut command = consumer_command(&topic, &output, &[partition]);
        command.args(["--batch-records", "25"]);
        command.spawn().expect("spawn consumer")
    };
    let mut consumers = Running((0..4).map(start).collect());

    let began = Instant::now();
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(150 + rng.below(500))).await;
        let victim = rng.below(4) as usize;
        consumers.0[victim].kill().expect("SIGKILL");
        consumers.0[victim].wait().expect("reap");
        consumers.0[victim] = start(victim as i32);
    }
    let summary = producing
        .await
        .expect("producer task")
        .expect("producer run");
    assert_eq!(summary.delivered, ROWS);
    eprintln!("{KILLS} kills in {:?}", began.elapsed());
    let guard = || {
        output
            .log()
            .matches("dropping a record delivered twice")
            .count()
    };

    let mut results = Vec::new();
    for (partition, child) in consumers.0.iter_mut().enumerate() {
        let partition = partition as i32;
        let expected = topic_records(&topic, partition);
        output
            .wait_for_offset(partition, expected.len() as i64, Duration::from_secs(120))
            .await;
        terminate(child, &output);
        eprintln!(
            "partition {partition}: records delivered twice and dropped so far: {}",
            guard()
        );
        results.push((expected, output.committed(partition).await));
    }
    let mut tally = Tally::default();
    for (expected, committed) in &results {
        tally += Tally::of(expected.iter().map(key), committed.iter().map(key));
    }
    let tally = tally.report(if on_hdfs {
        "parquet-hdfs-sigkill"
    } else {
        "parquet-local-sigkill"
    });
    assert_eq!(tally.records, ROWS, "records in the topic");
    assert!(tally.exact(), "{tally:?}");
    for (partition, (expected, committed)) in results.into_iter().enumerate() {
        assert_eq!(
            committed.len(),
            expected.len(),
            "partition {partition}: record count"
        );
        assert!(
            committed == expected,
            "partition {partition}: committed records differ from the topic"
        );
    }
}

/// One process for all four partitions, SIGKILLed and restarted with another
/// number of Kafka clients each time (3 splits the partitions unevenly): how
/// the partitions are spread over clients never changes what is committed.
#[tokio::test(flavor = "multi_thread")]
async fn a_process_of_all_partitions_restarted_with_other_client_counts_commits_exactly_once() {
    const ROWS: u64 = 2000;
    let topic = unique("chaos-clients");
    let output = Output::new(false);
    let mut rng = Chaos::new();
    let producing = produce(&topic, ROWS, Duration::from_millis(2)).await;

    let start = |clients: u64| -> Child {
        let mut command = consumer_command(&topic, &output, &[0, 1, 2, 3]);
        command.args(["--batch-records", "25", "--clients", &clients.to_string()]);
        command.spawn().expect("spawn consumer")
    };
    let counts = [3, 1, 2, 4];
    let mut consumer = Running(vec![start(counts[0])]);
    for kill in 1..=8 {
        tokio::time::sleep(Duration::from_millis(200 + rng.below(500))).await;
        consumer.0[0].kill().expect("SIGKILL");
        consumer.0[0].wait().expect("reap");
        consumer.0[0] = start(counts[kill % counts.len()]);
    }
    producing.await.expect("producer task");

    let expected: Vec<_> = (0..4).map(|p| topic_records(&topic, p)).collect();
    assert_eq!(
        expected.iter().map(Vec::len).sum::<usize>(),
        ROWS as usize,
        "the topic holds every row"
    );
    for (partition, records) in expected.iter().enumerate() {
        output
            .wait_for_offset(
                partition as i32,
                records.len() as i64,
                Duration::from_secs(120),
            )
            .await;
    }
    terminate(&mut consumer.0[0], &output);
    for (partition, records) in expected.iter().enumerate() {
        let committed = output.committed(partition as i32).await;
        assert_eq!(
            committed.len(),
            records.len(),
            "partition {partition}: record count"
        );
        assert!(
            committed == *records,
            "partition {partition}: committed records differ from the topic"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hdfs_sigkilled_consumers_commit_every_record_exactly_once() {
    chaos(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_sigkilled_consumers_commit_every_record_exactly_once() {
    chaos(false).await;
}
