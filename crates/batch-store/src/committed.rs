//! Reading what is committed: for each partition, exactly the batch files
//! `0..=batch_id` named by its checkpoint. Files with higher numbers may be
//! leftovers of a crash and are never read.

use bytes::Bytes;

use crate::batch_file::{decode, for_each_record, BatchFile, Record};
use crate::{CheckpointDir, Error, Result, Store};

/// The committed batch files of `partition`, in order.
pub async fn committed_batches(
    checkpoints: &CheckpointDir,
    partition: i32,
) -> Result<Vec<BatchFile>> {
    Ok(match checkpoints.load(partition).await? {
        Some(checkpoint) => (0..=checkpoint.batch_id)
            .map(|batch| BatchFile::new(partition, batch))
            .collect(),
        None => Vec::new(),
    })
}

/// Every committed record of `partition`, in offset order.
pub async fn read_committed(
    store: &Store,
    checkpoints: &CheckpointDir,
    partition: i32,
) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for file in committed_batches(checkpoints, partition).await? {
        records.extend(read_batch(store, &file).await?);
    }
    Ok(records)
}

/// The records of one committed batch file.
pub async fn read_batch(store: &Store, file: &BatchFile) -> Result<Vec<Record>> {
    let path = file.path();
    decode(&path, fetch_batch(store, &path).await?)
}

/// Calls `visit(station_id, date, degrees)` for each record of one committed
/// batch file (see [`for_each_record`]); returns the number of records.
pub async fn visit_batch(
    store: &Store,
    file: &BatchFile,
    visit: impl FnMut(&str, &str, f64),
) -> Result<usize> {
    let path = file.path();
    for_each_record(&path, fetch_batch(store, &path).await?, visit)
}

/// The bytes of a batch the checkpoint names: its absence is data loss, not "no data".
async fn fetch_batch(store: &Store, path: &str) -> Result<Bytes> {
    store.get(path).await.map_err(|err| {
        if err.is_not_found() {
            Error::MissingBatch {
                store: store.location(),
                path: path.to_string(),
            }
        } else {
            err
        }
    })
}
