//! Deterministic crashes at each step of a batch commit, on HDFS and on a
//! local directory, including with several batches uploaded at once and
//! none of them renamed yet. Whatever step the process dies at, the restarted consumer
//! ends with committed batches holding every record of the partition exactly
//! once, in offset order.

mod common;

use std::time::Duration;

use batch_store::{BatchFile, DATA_DIR};
use common::*;

const RECORDS: usize = 60;

fn is_tmp_of_batch_2(name: &str) -> bool {
    BatchFile::parse_tmp(name) == Some(BatchFile::new(0, 2))
}

async fn crash_at(point: &str, on_hdfs: bool) {
    let topic = unique(&format!("crash-{point}"));
    create_topic(&topic, 1).await;
    let reports = readings(0, RECORDS);
    send(&topic, 1, &reports).await;
    let output = Output::new(on_hdfs);

    // The third batch commit dies at `point`.
    let mut first = consumer_command(&topic, &output, &[0]);
    first
        .args(["--batch-records", "10"])
        .env(consumer::crash::ENV, format!("{point}@3"));
    let (ok, stderr) = run_to_exit(first, Duration::from_secs(60));
    assert!(!ok, "the consumer was supposed to crash; stderr: {stderr}");
    assert!(stderr.contains("crashing on purpose"), "{stderr}");

    // Two batches are committed; whatever the third left behind is not.
    let checkpoint = output
        .checkpoints()
        .load(0)
        .await
        .expect("checkpoint readable")
        .expect("checkpoint exists");
    assert_eq!(checkpoint.batch_id, 1, "{checkpoint:?}");
    assert!(checkpoint.offset < RECORDS as i64);
    let files = output.store().list(DATA_DIR).await.unwrap();
    let leftover = match point {
        "after-temp-file" => files.iter().any(|name| is_tmp_of_batch_2(name)),
        // Batch 2 and the later ones uploaded at the same time: written, none renamed.
        "after-uploads" => {
            let tmp: Vec<_> = files.iter().filter(|name| name.ends_with(".tmp")).collect();
            let renamed_later = files.iter().any(|name| {
                name.starts_with("partition-0-batch-")
                    && !name.ends_with(".tmp")
                    && !name.starts_with("partition-0-batch-0.")
                    && !name.starts_with("partition-0-batch-1.")
            });
            files.iter().any(|name| is_tmp_of_batch_2(name)) && tmp.len() >= 3 && !renamed_later
        }
        "after-rename" => files.contains(&"partition-0-batch-2.parquet".to_string()),
        _ => output.checkpoint_dir.join("partition-0.json.tmp").exists(),
    };
    assert!(leftover, "the crash at {point} left no trace: {files:?}");
    assert_eq!(
        output.committed(0).await.len() as i64,
        checkpoint.offset,
        "committed data must match the checkpoint"
    );

    // Restart and let it finish the partition.
    let mut second = consumer_command(&topic, &output, &[0]);
    second.args(["--batch-records", "10"]);
    let mut child = second.spawn().expect("restart consumer");
    output
        .wait_for_offset(0, RECORDS as i64, Duration::from_secs(60))
        .await;
    terminate(&mut child, &output);

    let committed = output.committed(0).await;
    assert_eq!(
        committed,
        topic_records(&topic, 0),
        "committed batches differ from the partition"
    );
    assert_eq!(committed.len(), RECORDS);
    let files = output.store().list(DATA_DIR).await.unwrap();
    assert!(
        files.iter().all(|name| !name.ends_with(".tmp")),
        "temp files left behind: {files:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hdfs_crash_after_writing_the_temp_file_neither_duplicates_nor_loses() {
    crash_at("after-temp-file", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hdfs_crash_after_the_rename_before_the_checkpoint_neither_duplicates_nor_loses() {
    crash_at("after-rename", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hdfs_crash_during_the_checkpoint_write_neither_duplicates_nor_loses() {
    crash_at("during-checkpoint", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_crash_after_writing_the_temp_file_neither_duplicates_nor_loses() {
    crash_at("after-temp-file", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_crash_after_the_rename_before_the_checkpoint_neither_duplicates_nor_loses() {
    crash_at("after-rename", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_crash_during_the_checkpoint_write_neither_duplicates_nor_loses() {
    crash_at("during-checkpoint", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hdfs_crash_with_several_batches_uploaded_none_renamed_neither_duplicates_nor_loses() {
    crash_at("after-uploads", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_crash_with_several_batches_uploaded_none_renamed_neither_duplicates_nor_loses() {
    crash_at("after-uploads", false).await;
}
