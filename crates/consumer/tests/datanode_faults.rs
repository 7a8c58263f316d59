//! A DataNode SIGKILLed while the four course-form consumers upload batches
//! to HDFS (the shared stack: three DataNodes, replication 3). A batch in
//! flight either completes through the write pipeline's recovery or is
//! written again (with a replica fewer while the NameNode still offers the
//! dead DataNode, then given its replication back); a checkpoint never moves
//! before its file is complete; the committed output equals the topic,
//! record for record, and every batch file asks for 3 replicas.
//!
//! Then the same with a single DataNode (an HDFS of the test's own, so
//! replication 1): its death fails the upload outright, and the consumer
//! retries until it is back.
//!
//! The first kills one of the shared stack's DataNodes, so both hold
//! `exclusive_stack` (the second is too heavy to run beside it on 2 cores).

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_datanode_killed_mid_upload_leaves_every_record_committed_once() {
    let _stack = local_stack::exclusive_stack();
    const ROWS: u64 = 4_000;
    let topic = unique("datanode-killed");
    let (producing, output, mut consumers) = course_form_under_way(&topic, ROWS).await;
    local_stack::stack(&["stop-service", "datanode-2", "--kill"]);
    let killed_at = Instant::now();
    let restart = local_stack::restore(&["start-service", "datanode-2"]);
    producing.await.unwrap();

    wait_for_the_ends(&topic, ROWS, &output).await;
    eprintln!(
        "measured: datanode-2 killed; every partition committed to its end {:.1} s later",
        killed_at.elapsed().as_secs_f64()
    );
    drop(restart);
    stop_and_compare(&topic, &output, &mut consumers).await;
    // A batch written with a replica fewer while the NameNode still offered
    // the dead DataNode got its replication back.
    let stat = local_stack::stack_output(&[
        "hdfs",
        "-stat",
        "%r %n",
        &format!("{}/data/*.parquet", output.store_location),
    ]);
    let batches: Vec<&str> = stat.lines().collect();
    assert!(!batches.is_empty(), "no batch file listed");
    let short: Vec<&&str> = batches.iter().filter(|l| !l.starts_with("3 ")).collect();
    assert!(
        short.is_empty(),
        "batch files without their 3 replicas: {short:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_only_datanode_killed_mid_upload_fails_the_upload_until_it_is_back() {
    let _stack = local_stack::exclusive_stack();
    let hdfs = local_stack::PrivateHdfs::start();
    let topic = unique("datanode-alone");
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, 200)).await;
    let mut output = Output::new(true);
    output.store_location = format!("{}/{}", hdfs.url(), unique("one-datanode"));
    let mut command = consumer_command(&topic, &output, &[0]);
    command.args(["--batch-records", "10"]);
    let mut consumer = Running(vec![command.spawn().unwrap()]);
    wait_until(
        "a first batch",
        Duration::from_secs(60),
        || block_on(output.committed_offset(0)) > 0,
        || output.log(),
    );

    hdfs.stack(&["stop-service", "datanode-1", "--kill"]);
    let killed_at = Instant::now();
    send(&topic, 1, &readings(200, 100)).await;
    wait_until(
        "a failed upload",
        Duration::from_secs(60),
        || {
            output
                .log()
                .contains("cannot write the batch file; retrying")
        },
        || output.log(),
    );
    let stuck_at = output.committed_offset(0).await;
    assert!(stuck_at < 300, "everything committed without a DataNode");
    hdfs.stack(&["start-service", "datanode-1"]);
    let back_at = Instant::now();
    output
        .wait_for_offset(0, 300, Duration::from_secs(180))
        .await;
    eprintln!(
        "measured: the only DataNode killed; uploads failed until it was back {:.1} s later; caught up {:.1} s after that",
        (back_at - killed_at).as_secs_f64(),
        back_at.elapsed().as_secs_f64()
    );
    terminate(&mut consumer.0[0], &output);
    assert_eq!(output.committed(0).await, topic_records(&topic, 0));
}

/// Runs a future to completion on the current runtime from a sync closure.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}
