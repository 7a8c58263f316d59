//! The HDFS NameNode goes away for a while in the middle of a run (stopped,
//! or frozen so that it holds its connections and answers nothing), or is in
//! safe mode when the consumer starts: the consumer keeps retrying without
//! moving its checkpoint, continues when the NameNode is back, and the output
//! is still exactly once.
//!
//! These change the shared stack's NameNode, so each holds
//! `local_stack::exclusive_stack`: no other test, of this binary or another
//! process, runs beside it.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_rides_out_a_namenode_outage_with_exactly_once_output() {
    let _stack = local_stack::exclusive_stack();
    let topic = one_partition_of("namenode-outage", 50).await;
    let output = Output::new(true);
    let mut child = consuming_partition_0(&topic, &output, &["--batch-records", "5"], 50).await;

    local_stack::stack(&["stop-service", "namenode"]);
    let restart = local_stack::restore(&["start-service", "namenode"]);
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
    terminate(&mut child.0[0], &output);
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

#[tokio::test(flavor = "multi_thread")]
async fn a_namenode_that_stops_answering_is_timed_out_and_the_consumer_recovers() {
    namenode_silent_then_back(
        &["pause-service", "namenode"],
        &["resume-service", "namenode"],
    )
    .await;
}

/// The link to the NameNode cut for real: every packet to and from its ports
/// dropped, so a new connection hangs in its handshake and an open one gets
/// no answer (nothing is refused).
#[tokio::test(flavor = "multi_thread")]
async fn a_namenode_whose_packets_are_dropped_is_timed_out_and_the_consumer_recovers() {
    namenode_silent_then_back(&["cut-link", "namenode"], &["mend-links"]).await;
}

/// `silence` makes the NameNode stop answering (`scripts/stack` arguments),
/// `back` undoes it: every HDFS call is bounded by the timeout, the stall is
/// logged, the checkpoint does not move, and once the NameNode answers again
/// the consumer catches up with every record once.
async fn namenode_silent_then_back(silence: &[&str], back: &[&str]) {
    let _stack = local_stack::exclusive_stack();
    let topic = one_partition_of("namenode-hang", 50).await;
    let output = Output::new(true);
    let args = ["--batch-records", "5", "--hdfs-timeout", "3"];
    let mut child = consuming_partition_0(&topic, &output, &args, 50).await;

    local_stack::stack(silence);
    let resume = local_stack::restore(back);
    let paused = std::time::Instant::now();
    send(&topic, 1, &readings(50, 50)).await;
    wait_until(
        "a timed-out HDFS call in the log",
        Duration::from_secs(15),
        || output.log().contains("no answer within 3s"),
        || output.log(),
    );
    eprintln!(
        "measured: {silence:?}: stall logged {:.1} s after the NameNode went silent",
        paused.elapsed().as_secs_f64()
    );
    assert!(
        output
            .log()
            .contains("cannot write the batch file; retrying"),
        "{}",
        output.log()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        output.committed_offset(0).await,
        50,
        "the checkpoint moved while HDFS did not answer"
    );
    drop(resume);
    let resumed = std::time::Instant::now();

    output
        .wait_for_offset(0, 100, Duration::from_secs(120))
        .await;
    eprintln!(
        "measured: {silence:?}: caught up {:.1} s after the NameNode answered again",
        resumed.elapsed().as_secs_f64()
    );
    terminate(&mut child.0[0], &output);
    assert_eq!(output.committed(0).await, topic_records(&topic, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_started_while_hdfs_is_in_safe_mode_waits_then_proceeds() {
    let _stack = local_stack::exclusive_stack();
    let topic = one_partition_of("safe-mode", 50).await;
    local_stack::stack(&["dfsadmin", "-safemode", "enter"]);
    let leave = local_stack::restore(&["dfsadmin", "-safemode", "leave"]);

    let output = Output::new(true);
    let mut command = consumer_command(&topic, &output, &[0]);
    command.args(["--batch-records", "10"]);
    let mut child = Running(vec![command.spawn().expect("start consumer")]);
    wait_until(
        "a safe-mode refusal in the log",
        Duration::from_secs(30),
        || output.log().contains("SafeModeException"),
        || output.log(),
    );
    assert!(
        output
            .log()
            .contains("cannot write the batch file; retrying"),
        "{}",
        output.log()
    );
    assert_eq!(
        output.committed_offset(0).await,
        0,
        "committed in safe mode"
    );
    assert!(
        child.0[0].try_wait().unwrap().is_none(),
        "the consumer gave up"
    );
    drop(leave);

    output.wait_for_offset(0, 50, Duration::from_secs(60)).await;
    terminate(&mut child.0[0], &output);
    assert_eq!(output.committed(0).await, topic_records(&topic, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namenode_restarted_while_four_consumers_upload_leaves_every_record_once() {
    let _stack = local_stack::exclusive_stack();
    const ROWS: u64 = 4_000;
    let topic = unique("namenode-restart");
    let (producing, output, mut consumers) = course_form_under_way(&topic, ROWS).await;
    local_stack::stack(&["stop-service", "namenode"]);
    let restart = local_stack::restore(&["start-service", "namenode"]);
    let stopped_at = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(restart);
    let back_at = std::time::Instant::now();
    producing.await.unwrap();

    wait_for_the_ends(&topic, ROWS, &output).await;
    eprintln!(
        "measured: NameNode down {:.1} s (stop to ready); every partition at its end {:.1} s after it was back",
        (back_at - stopped_at).as_secs_f64(),
        back_at.elapsed().as_secs_f64()
    );
    stop_and_compare(&topic, &output, &mut consumers).await;
}
