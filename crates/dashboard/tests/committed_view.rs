//! The committed view reads only committed batches, and on refresh only the
//! batches committed since the last one.

mod common;

use common::*;
use dashboard::{CommittedView, Month};

fn view(committed: &Committed) -> CommittedView {
    CommittedView::new(committed.store(), committed.checkpoints(), None)
}

#[tokio::test]
async fn a_refresh_reads_only_the_batches_committed_since_the_last_one() {
    let committed = Committed::local();
    for batch in 0..5 {
        committed
            .write_batch(0, batch, &[("StationA", "2000-01-01", batch as f64)])
            .await;
    }
    committed.commit(0, 4, 5).await;
    let mut view = view(&committed);
    let first = view.refresh().await;
    assert_eq!((first.batches_read, first.records_read), (5, 5));
    assert!(first.problems.is_empty(), "{:?}", first.problems);

    let again = view.refresh().await;
    assert_eq!(again.batches_read, 0, "nothing new was committed");

    committed
        .write_batch(
            0,
            5,
            &[
                ("StationA", "2000-02-01", 10.0),
                ("StationB", "2000-02-03", 4.0),
            ],
        )
        .await;
    committed.commit(0, 5, 7).await;
    let next = view.refresh().await;
    assert_eq!((next.batches_read, next.records_read), (1, 2));
    let a = &view.stations()["StationA"];
    assert_eq!(a.records, 6);
    let latest = a.latest.as_ref().expect("a dated reading");
    assert_eq!((latest.date.as_str(), latest.degrees), ("2000-02-01", 10.0));
    let january = a.months[&Month {
        year: 2000,
        month: 1,
    }];
    assert_eq!((january.count, january.mean()), (5, 2.0));
    assert_eq!(view.records(), 7);
}

#[tokio::test]
async fn a_batch_above_the_checkpoint_is_never_counted() {
    let committed = Committed::local();
    committed
        .write_batch(1, 0, &[("StationA", "2000-01-01", 1.0)])
        .await;
    committed.commit(1, 0, 1).await;
    // Written, renamed into place, but the consumer died before the checkpoint.
    committed
        .write_batch(1, 1, &[("StationZ", "2000-01-02", 50.0)])
        .await;
    let mut view = view(&committed);
    view.refresh().await;
    assert!(!view.stations().contains_key("StationZ"));
    assert_eq!(view.records(), 1);

    // Once committed, it counts, exactly once.
    committed.commit(1, 1, 2).await;
    view.refresh().await;
    view.refresh().await;
    assert_eq!(view.stations()["StationZ"].records, 1);
    assert_eq!(view.records(), 2);
}

#[tokio::test]
async fn a_checkpoint_that_moved_back_makes_the_view_start_over() {
    let committed = Committed::local();
    committed
        .write_batch(0, 0, &[("StationA", "2000-01-01", 1.0)])
        .await;
    committed
        .write_batch(0, 1, &[("StationA", "2000-01-02", 2.0)])
        .await;
    committed.commit(0, 1, 2).await;
    let mut view = view(&committed);
    view.refresh().await;
    assert_eq!(view.records(), 2);

    // The output was started over (consumer --reset) and has one batch so far.
    committed
        .write_batch(0, 0, &[("StationB", "2000-01-01", 3.0)])
        .await;
    committed.commit(0, 0, 1).await;
    let report = view.refresh().await;
    assert!(report.started_over);
    assert_eq!(view.records(), 1);
    assert!(!view.stations().contains_key("StationA"));
}

#[tokio::test]
async fn a_checkpoint_that_disappeared_takes_its_records_with_it() {
    let committed = Committed::local();
    committed
        .write_batch(0, 0, &[("StationA", "2000-01-01", 1.0)])
        .await;
    committed.commit(0, 0, 1).await;
    committed
        .write_batch(1, 0, &[("StationB", "2000-01-01", 2.0)])
        .await;
    committed.commit(1, 0, 1).await;
    let mut view = view(&committed);
    view.refresh().await;
    assert_eq!(view.records(), 2);

    std::fs::remove_file(committed.checkpoint_dir.join("partition-1.json")).unwrap();
    let report = view.refresh().await;
    assert!(report.started_over);
    assert_eq!(view.records(), 1);
    assert!(!view.stations().contains_key("StationB"));
}

#[tokio::test]
async fn a_missing_or_unreadable_batch_is_a_problem_and_counts_nothing() {
    let committed = Committed::local();
    committed
        .write_batch(0, 0, &[("StationA", "2000-01-01", 1.0)])
        .await;
    committed.commit(0, 1, 2).await; // names batch 1, which is not there
    let mut view = view(&committed);
    let report = view.refresh().await;
    assert_eq!(view.records(), 1);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("partition-0-batch-1.parquet"),
        "{:?}",
        report.problems
    );

    // A file that is not Parquet: still nothing counted, the next refresh tries again.
    std::fs::write(
        std::path::Path::new(&committed.store_location).join("data/partition-0-batch-1.parquet"),
        b"not parquet",
    )
    .unwrap();
    let report = view.refresh().await;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(view.records(), 1);

    committed
        .write_batch(0, 1, &[("StationA", "2000-01-02", 2.0)])
        .await;
    let report = view.refresh().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(view.records(), 2);
}

#[tokio::test]
async fn checkpoints_on_hdfs_are_listed_and_read_there() {
    use batch_store::{BatchBuilder, BatchFile, Checkpoint, CheckpointDir, Store};
    let base = format!(
        "{}/{}",
        local_stack::hdfs_url(),
        local_stack::unique_name("dashboard-hdfs-checkpoints")
    );
    let store = Store::open(&base).unwrap();
    let checkpoints = CheckpointDir::open(&format!("{base}/checkpoints")).unwrap();
    for (partition, batch, station) in [(0, 0, "StationA"), (0, 1, "StationB"), (2, 0, "StationC")]
    {
        let mut builder = BatchBuilder::default();
        builder.push(station, "2000-01-01", 1.5);
        store
            .put_atomic(
                &BatchFile::new(partition, batch).path(),
                builder.finish().unwrap(),
            )
            .await
            .unwrap();
    }
    for (partition, batch_id) in [(0, 1), (2, 0)] {
        checkpoints
            .save(
                partition,
                &Checkpoint {
                    batch_id,
                    offset: batch_id as i64 + 1,
                },
            )
            .await
            .unwrap();
    }
    let mut view = CommittedView::new(store, checkpoints, None);
    let read = view.refresh().await;
    assert!(read.problems.is_empty(), "{:?}", read.problems);
    assert_eq!((read.batches_read, read.records_read), (3, 3));
    assert_eq!(
        view.partitions().keys().copied().collect::<Vec<_>>(),
        [0, 2]
    );
    assert!(view.last_commit().is_some(), "commit times come from HDFS");
}
