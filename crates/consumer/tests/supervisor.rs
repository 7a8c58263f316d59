//! A crash inside the consumer's worker process (what librdkafka 2.12.1 does
//! on a deleted topic, see docs/faults.md) does not end the consumer: its
//! supervisor starts the worker again, which resumes from the checkpoint, and
//! every record is still committed exactly once. A worker that keeps
//! crashing is given up with one line, and a supervisor killed outright takes
//! its worker with it.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use common::*;

fn is_alive(pid: u32) -> bool {
    !matches!(state_of(pid), None | Some('Z'))
}

/// Waits for a worker other than `previous` and returns it.
fn wait_for_worker(supervisor: u32, previous: Option<u32>, output: &Output) -> u32 {
    let mut found = None;
    wait_until(
        "a worker process",
        Duration::from_secs(30),
        || {
            found = worker_of(supervisor).filter(|pid| Some(*pid) != previous);
            found.is_some()
        },
        || output.log(),
    );
    found.unwrap()
}

/// Crashes the worker as librdkafka's assertions do (SIGABRT). A SIGSEGV
/// sent from outside would not do: Rust's runtime handles the first one
/// (it looks for a stack overflow) and carries on, while a real invalid
/// access faults again once that handler has stepped aside.
fn crash(worker: u32) {
    let sent = Command::new("kill")
        .args(["-ABRT", &worker.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_worker_is_started_again_and_every_record_is_committed_once() {
    const FIRST: usize = 3_000;
    let topic = one_partition_of("supervised", FIRST).await;
    let output = Output::new(false);
    let mut consumer =
        consuming_partition_0(&topic, &output, &["--batch-records", "100"], FIRST as i64).await;
    let supervisor = consumer.0[0].id();
    let worker = wait_for_worker(supervisor, None, &output);

    crash(worker);
    wait_until(
        "the crash line",
        Duration::from_secs(30),
        || {
            output
                .log()
                .contains("the worker process crashed (signal 6, SIGABRT)")
        },
        || output.log(),
    );
    let restarted = wait_for_worker(supervisor, Some(worker), &output);
    assert!(
        consumer.0[0].try_wait().unwrap().is_none(),
        "the consumer ended:\n{}",
        output.log()
    );

    // The new worker goes on from the checkpoint with what arrives next.
    send(&topic, 1, &readings(FIRST, 2_000)).await;
    output
        .wait_for_offset(0, 5_000, Duration::from_secs(60))
        .await;
    assert_eq!(worker_of(supervisor), Some(restarted));
    stop_and_compare_partition_0(&topic, &output, &mut consumer).await;
}

async fn stop_and_compare_partition_0(topic: &str, output: &Output, consumer: &mut Running) {
    terminate(&mut consumer.0[0], output);
    let committed = output.committed(0).await;
    assert_eq!(
        committed,
        topic_records(topic, 0),
        "committed batches differ from the partition"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_keeps_crashing_is_given_up_with_one_line() {
    let topic = one_partition_of("supervised-loop", 500).await;
    let output = Output::new(false);
    let mut consumer = consuming_partition_0(&topic, &output, &[], 500).await;
    let supervisor = consumer.0[0].id();
    let mut worker = None;
    for _ in 0..3 {
        let next = wait_for_worker(supervisor, worker, &output);
        crash(next);
        worker = Some(next);
    }
    let status = local_stack::wait_for_exit(&mut consumer.0[0], Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the consumer kept going:\n{}", output.log()));
    assert_eq!(
        (status.code(), status.signal()),
        (Some(1), None),
        "{}",
        output.log()
    );
    let log = output.log();
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("consumer: the worker process crashed 3 times within 60s")
            && last.contains("giving up"),
        "{log}"
    );
    // What was committed stays.
    assert_eq!(output.committed(0).await, topic_records(&topic, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_killed_outright_leaves_no_worker_behind() {
    let topic = one_partition_of("supervised-kill", 500).await;
    let output = Output::new(false);
    let mut consumer = consuming_partition_0(&topic, &output, &[], 500).await;
    let supervisor = consumer.0[0].id();
    let worker = wait_for_worker(supervisor, None, &output);
    consumer.0[0].kill().unwrap();
    consumer.0[0].wait().unwrap();
    wait_until(
        "the worker's end",
        Duration::from_secs(10),
        || !is_alive(worker),
        || output.log(),
    );
    // The partition is free again at once: a new consumer takes it.
    let mut next = Running(vec![consumer_command(&topic, &output, &[0])
        .spawn()
        .unwrap()]);
    wait_for_worker(next.0[0].id(), None, &output);
    stop_and_compare_partition_0(&topic, &output, &mut next).await;
}

/// A SIGTERM that reaches the program while its worker is still starting
/// up (before it listens for signals) waits for the worker to listen, then
/// stops it cleanly: exit 0, and what it left is resumed exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_during_start_up_is_a_clean_stop() {
    let topic = one_partition_of("supervised-early-stop", 500).await;
    let output = Output::new(false);
    for _ in 0..3 {
        let mut consumer = consumer_command(&topic, &output, &[0]).spawn().unwrap();
        let supervisor = consumer.id();
        let started = std::time::Instant::now();
        while worker_of(supervisor).is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no worker process within 10 s:\n{}",
                output.log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        terminate(&mut consumer, &output);
    }
    let mut consumer = Running(vec![consumer_command(&topic, &output, &[0])
        .spawn()
        .unwrap()]);
    output
        .wait_for_offset(0, 500, Duration::from_secs(60))
        .await;
    stop_and_compare_partition_0(&topic, &output, &mut consumer).await;
}
