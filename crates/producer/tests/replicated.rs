//! The producer on a three-node KRaft cluster of the test's own:
//! `--replication 3` makes a topic whose every partition has three in-sync
//! replicas and `min.insync.replicas=2`, and every row arrives once.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::consumer::{BaseConsumer, Consumer};
use topic::KafkaSettings;

#[tokio::test(flavor = "multi_thread")]
async fn replication_3_on_three_nodes_delivers_every_row_once_to_three_replicas() {
    const ROWS: u64 = 3000;
    let cluster = local_stack::PrivateBroker::cluster(3);
    let settings = KafkaSettings::new(cluster.brokers());
    let topic = local_stack::unique_name("replicated");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("producer.log");
    let output = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args([
            "--source",
            "generator",
            "--rows",
            &ROWS.to_string(),
            "--delay",
            "0",
        ])
        .args(["--replication", "3", "--settle", "0", "--wait", "60"])
        .args(["--brokers", &cluster.brokers(), "--topic", &topic])
        .env("RUST_LOG", "info")
        .env_remove("PROJECT")
        .env_remove("AUTOGRADER_DELAY_OVERRIDE_VAL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(local_stack::append_log(&log))
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(output.status.success(), "{}\n{text}", output.status);
    assert!(text.contains(&format!("delivered={ROWS}")), "{text}");

    // Three replicas on three nodes, all in sync, for every partition.
    let metadata_client: BaseConsumer = settings
        .assigned_consumer_config("replicated-test")
        .create()
        .unwrap();
    let metadata = metadata_client
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions();
    assert_eq!(partitions.len(), 4);
    for partition in partitions {
        let mut replicas = partition.replicas().to_vec();
        replicas.sort_unstable();
        replicas.dedup();
        assert_eq!(replicas.len(), 3, "partition {}", partition.id());
        assert_eq!(partition.isr().len(), 3, "partition {}", partition.id());
    }
    // The cluster's default for topics: two replicas must acknowledge.
    let admin = settings.admin().unwrap();
    let configs = admin
        .describe_configs(&[ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await
        .unwrap();
    let config = configs.into_iter().next().unwrap().unwrap();
    let min_isr = config
        .get("min.insync.replicas")
        .and_then(|entry| entry.value.clone());
    assert_eq!(min_isr.as_deref(), Some("2"));

    let found = topic_messages_on(&settings, &topic, 4);
    let tally = local_stack::Tally::of(1..=ROWS as i64, found.iter().map(|m| m.row_id))
        .report("replicated");
    assert!(tally.exact(), "{tally:?}");
}
