//! Reading what is committed: for each partition, exactly the batch files
//! `0..=batch_id` named by its checkpoint. Files with higher numbers may be
//! leftovers of a crash and are never read.

use crate::batch_file::{decode, BatchFile, Record};
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
    let bytes = store.get(&path).await.map_err(|err| {
        if err.is_not_found() {
            Error::MissingBatch {
                store: store.location(),
                path: path.clone(),
            }
        } else {
            err
        }
    })?;
    decode(&path, bytes)
}
