//! What `--status` prints: the committed state of each partition, one line
//! per partition of `key=value` fields, so scripts ask the programs instead of
//! knowing the state files' formats:
//!
//! ```text
//! partition=0 offset=1234 batches=3                                  (consumer)
//! partition=0 offset=1234 records=1234 StationA=124 StationB=123 …   (consumer --stats)
//! partition=0 offset=1234 skipped=2                                  (collector)
//! ```
//!
//! A partition with nothing committed yet has offset 0 (and no batches,
//! records or stations). Nothing is locked: it reads what a running program
//! last committed.

use std::path::Path;

use batch_store::{CheckpointDir, Store};

use crate::jsonl::{ArchiveCheckpoint, CHECKPOINT_DIR};
use crate::stats::PartitionStats;
use crate::Result;

/// A Parquet partition: its checkpoint's offset and the batches it commits.
pub async fn parquet(checkpoints: &CheckpointDir, partition: i32) -> Result<String> {
    let (offset, batches) = checkpoints
        .load(partition)
        .await?
        .map_or((0, 0), |cp| (cp.offset, cp.batch_id + 1));
    Ok(format!(
        "partition={partition} offset={offset} batches={batches}"
    ))
}

/// A stats partition: its offset, the records counted and the count per station.
pub async fn stats(dir: &CheckpointDir, partition: i32) -> Result<String> {
    let state = PartitionStats::load(dir, partition)
        .await?
        .unwrap_or_default();
    let records: u64 = state.stations.values().map(|s| s.count).sum();
    let mut line = format!(
        "partition={partition} offset={} records={records}",
        state.offset
    );
    for (station, stats) in &state.stations {
        line.push_str(&format!(" {station}={}", stats.count));
    }
    Ok(line)
}

/// The archive's partitions of `topic` (`partitions`, or every one its
/// checkpoint names): the offset, and the messages that went to the dead letters.
pub async fn archive(dir: &Path, topic: &str, partitions: &[i32]) -> Result<Vec<String>> {
    let checkpoint = ArchiveCheckpoint::load(&Store::local(dir.join(CHECKPOINT_DIR))).await?;
    let partitions = if partitions.is_empty() {
        let mut named: Vec<i32> = checkpoint
            .offsets
            .get(topic)
            .into_iter()
            .flat_map(|offsets| offsets.keys().filter_map(|p| p.parse().ok()))
            .collect();
        named.sort_unstable();
        named
    } else {
        partitions.to_vec()
    };
    Ok(partitions
        .iter()
        .map(|&partition| {
            let offset = checkpoint.offset(topic, partition).unwrap_or(0);
            let skipped = checkpoint.skipped(topic, partition);
            format!("partition={partition} offset={offset} skipped={skipped}")
        })
        .collect())
}
