//! The HDFS NameNode goes away for a while in the middle of a run: the
//! consumer keeps retrying without moving its checkpoint, continues when the
//! NameNode is back, and the output is still exactly once.
//!
//! This stops the shared stack's NameNode, so it lives alone in its own test
//! binary (cargo runs test binaries one at a time).

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_rides_out_a_namenode_outage_with_exactly_once_output() {
    let topic = unique("namenode-outage");
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, 50)).await;
    let output = Output::new(true);
    let mut command = consumer_command(&topic, &output, &[0]);
    command.args(["--batch-records", "5"]);
    let mut child = command.spawn().expect("start consumer");
    output.wait_for_offset(0, 50, Duration::from_secs(60)).await;

    stack(&["stop-service", "namenode"]);
    let restart = scopeguard(|| stack(&["start-service", "namenode"]));
    send(&topic, 1, &readings(50, 50)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        output.committed_offset(0).await,
        50,
        "the checkpoint moved while HDFS was down"
    );
    drop(restart);

    output
        .wait_for_offset(0, 100, Duration::from_secs(120))
        .await;
    terminate(&mut child, &output);
    let committed = output.committed(0).await;
    assert_eq!(committed.len(), 100);
    assert_eq!(committed, topic_records(&topic, 0));
    // hdfs-native retries refused connections itself; longer outages reach our own retry loop.
    let log = output.log();
    assert!(
        log.contains("Connection refused") || log.contains("cannot write the batch file"),
        "the outage was not noticed:\n{log}"
    );
}
