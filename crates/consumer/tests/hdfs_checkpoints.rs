//! Checkpoints on HDFS (`--checkpoint-dir hdfs://…`), where any host can take
//! a partition over: the course form commits exactly once with them, also
//! under SIGKILLs; `--status` and `--committed` read them there; and a
//! consumer that is paused in the middle of a commit while another takes its
//! partition over cannot commit over the new owner when it wakes (it is
//! fenced). Run with `P7_NO_FENCING=1` to see the last test fail.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use local_stack::Tally;

fn records_key(records: &[batch_store::Record]) -> Vec<(String, String, u64)> {
    records.iter().map(key).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_course_form_commits_exactly_once_with_checkpoints_on_hdfs() {
    const ROWS: u64 = 1600;
    let topic = unique("hdfs-checkpoints");
    produce(&topic, ROWS, Duration::ZERO).await.await.unwrap();
    let output = Output::with_hdfs_checkpoints();
    let mut consumers = Running(
        (0..4)
            .map(|p| {
                let mut command = consumer_command(&topic, &output, &[p]);
                command.args(["--batch-records", "60"]);
                command.spawn().unwrap()
            })
            .collect(),
    );
    wait_for_the_ends(&topic, ROWS, &output).await;
    stop_and_compare(&topic, &output, &mut consumers).await;

    // --status and --committed read the checkpoints where they are.
    let ask = |args: &[&str]| -> String {
        let out = local_stack::stdout_of(
            Command::new(env!("CARGO_BIN_EXE_consumer"))
                .args(args)
                .arg("--store")
                .arg(&output.store_location)
                .arg("--checkpoint-dir")
                .arg(output.checkpoint_arg())
                .env_remove("PROJECT"),
        );
        String::from_utf8(out).unwrap()
    };
    let status = ask(&["--status", "0", "1", "2", "3"]);
    let ends: Vec<usize> = (0..4).map(|p| topic_records(&topic, p).len()).collect();
    for (p, end) in ends.iter().enumerate() {
        assert!(
            status.contains(&format!("partition={p} offset={end} ")),
            "{status}"
        );
    }
    let committed = ask(&["--committed", "0", "1", "2", "3"]);
    assert_eq!(committed.lines().count() as u64, ROWS);

    // Beside the checkpoints, only each partition's owner directory (its
    // temp files renamed away), and no temp file among the batches.
    let store = output.store();
    let mut dirs = store.list_dirs("checkpoints").await.unwrap();
    dirs.sort();
    assert_eq!(
        dirs,
        (0..4)
            .map(|p| format!("partition-{p}.owner-1"))
            .collect::<Vec<_>>()
    );
    for dir in &dirs {
        assert!(store
            .list(&format!("checkpoints/{dir}"))
            .await
            .unwrap()
            .is_empty());
    }
    assert!(store
        .list("data")
        .await
        .unwrap()
        .iter()
        .all(|name| name.ends_with(".parquet")));

    // The store must be on the checkpoints' NameNode.
    let mut elsewhere = bare_consumer_command(&topic, &output, &[0]);
    elsewhere
        .arg("--store")
        .arg(output.checkpoint_dir.with_file_name("local-store"))
        .arg("--checkpoint-dir")
        .arg(output.checkpoint_arg());
    let (ok, stderr) = run_to_exit(elsewhere, Duration::from_secs(60));
    assert!(!ok);
    assert!(stderr.contains("same NameNode"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkilled_consumers_with_checkpoints_on_hdfs_commit_exactly_once() {
    const ROWS: u64 = 2000;
    let topic = unique("hdfs-checkpoints-chaos");
    let producing = produce(&topic, ROWS, Duration::from_millis(2)).await;
    let output = Output::with_hdfs_checkpoints();
    let start = |partition: i32| -> Child {
        let mut command = consumer_command(&topic, &output, &[partition]);
        command.args(["--batch-records", "25"]);
        command.spawn().expect("spawn consumer")
    };
    let mut consumers = Running((0..4).map(start).collect());
    consumers
        .kill_and_restart(
            12,
            Duration::from_millis(200),
            Duration::from_millis(600),
            |victim| start(victim as i32),
        )
        .await;
    producing.await.unwrap();
    wait_for_the_ends(&topic, ROWS, &output).await;
    stop_and_compare(&topic, &output, &mut consumers).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_paused_mid_commit_cannot_commit_over_the_one_that_took_over() {
    const ROWS: usize = 600;
    let topic = one_partition_of("fencing", ROWS).await;
    let output = Output::with_hdfs_checkpoints();
    let expected = topic_records(&topic, 0);
    assert_eq!(expected.len(), ROWS);

    // A stops itself with its third batch's temp file written and not yet
    // renamed (batches 0 and 1 committed), as a long pause would catch it;
    // should it get through that commit, it dies at the next one.
    let mut first = consumer_command(&topic, &output, &[0]);
    first
        .args(["--batch-records", "50", "--exit-when-idle", "5"])
        .env("P7_PAUSE_POINT", "after-temp-file@3")
        .env("P7_CRASH_POINT", "after-temp-file@4")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped());
    let mut first = Running(vec![first.spawn().unwrap()]);
    let worker = paused_worker(&first.0[0]).await;
    assert_eq!(output.committed_offset(0).await, 100);

    // B takes the partition over and commits it to its end, in batches of
    // another size than A's.
    let mut second = consumer_command(&topic, &output, &[0]);
    second.args(["--batch-records", "30", "--exit-when-idle", "3"]);
    let (ok, stderr) = run_to_exit(second, Duration::from_secs(120));
    assert!(ok, "{stderr}\n{}", output.log_tail(40));
    assert_eq!(output.committed_offset(0).await, ROWS as i64);

    // A wakes up in the middle of its commit.
    local_stack::signal(worker, "CONT");
    let child = &mut first.0[0];
    let status = local_stack::wait_for_exit(child, Duration::from_secs(60))
        .expect("the first consumer did not stop");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    // What is committed is the partition, exactly.
    let committed = output.committed(0).await;
    let tally = Tally::of(
        expected
            .iter()
            .enumerate()
            .map(|(offset, r)| (0, offset as i64, key(r))),
        committed
            .iter()
            .enumerate()
            .map(|(offset, r)| (0, offset as i64, key(r))),
    )
    .report("fencing");
    assert!(
        tally.exact(),
        "{tally:?}; the first consumer said:\n{stderr}"
    );
    assert_eq!(records_key(&committed), records_key(&expected));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("was fenced") && !stderr.contains("crashing on purpose"),
        "the first consumer was not fenced:\n{stderr}"
    );
}
