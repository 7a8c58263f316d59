//! The per-partition checkpoint `partition-N.json`: `{"batch_id": M, "offset": O}`.
//!
//! It names the last batch file that is in place and the next offset to read,
//! in one file replaced atomically, so data and position always agree: a
//! reader trusts batches `0..=batch_id` and a restarted consumer continues at
//! `offset` with batch `batch_id + 1`.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The last committed batch.
    pub batch_id: u64,
    /// The next offset of the partition to read.
    pub offset: i64,
}

/// The directory checkpoints live in: a local one (the container's `/` in
/// the course), or one on HDFS (`hdfs://host:port/path`), shared by every
/// host that may take a partition over.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    /// The local directory, or the HDFS URL (for messages only).
    dir: PathBuf,
    store: Store,
}

impl CheckpointDir {
    /// A local directory.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref().to_path_buf();
        Self {
            store: Store::local(&dir),
            dir,
        }
    }

    /// `hdfs://host:port/path`, or a local directory (`file:///dir` or a path).
    pub fn open(location: &str) -> Result<Self> {
        if location.starts_with("hdfs://") {
            let store = Store::open(location)?;
            return Ok(Self {
                dir: PathBuf::from(store.location()),
                store,
            });
        }
        match Store::open(location)? {
            Store::Local(store) => Ok(Self::new(store.root())),
            Store::Hdfs(_) => unreachable!("an hdfs:// location is handled above"),
        }
    }

    /// Bounds every call to a remote directory (HDFS) by `timeout`.
    pub fn with_call_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.store = self.store.with_call_timeout(timeout);
        self
    }

    /// Whether the checkpoints are on the local file system (and so can be
    /// guarded by an OS file lock).
    pub fn is_local(&self) -> bool {
        matches!(self.store, Store::Local(_))
    }

    /// The local directory; for a directory on HDFS, its URL.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn file_name(partition: i32) -> String {
        format!("partition-{partition}.json")
    }

    /// The checkpoint file of `partition` (for HDFS, its URL).
    pub fn path(&self, partition: i32) -> PathBuf {
        PathBuf::from(self.store.describe(&Self::file_name(partition)))
    }

    /// The checkpoint of `partition`, or `None` if it has none yet; a file
    /// that is not a valid checkpoint is an error (see [`Store::load_state`]).
    pub async fn load(&self, partition: i32) -> Result<Option<Checkpoint>> {
        self.store
            .load_state(&Self::file_name(partition), |bytes| {
                let checkpoint: Checkpoint =
                    serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
                if checkpoint.offset < 0 {
                    return Err(format!("negative offset {}", checkpoint.offset));
                }
                Ok(checkpoint)
            })
            .await
    }

    /// The bytes a checkpoint is stored as.
    pub fn encode(checkpoint: &Checkpoint) -> Bytes {
        Bytes::from(serde_json::to_vec(checkpoint).expect("a checkpoint always serializes"))
    }

    /// Replaces the checkpoint atomically (temp file, fsync, rename, fsync of the directory).
    pub async fn save(&self, partition: i32, checkpoint: &Checkpoint) -> Result<()> {
        self.store
            .put_atomic(&Self::file_name(partition), Self::encode(checkpoint))
            .await
    }

    /// Removes the checkpoint (a deliberate reset).
    pub async fn remove(&self, partition: i32) -> Result<bool> {
        self.store.delete(&Self::file_name(partition)).await
    }

    /// The store holding the checkpoint files themselves.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saves_and_loads_the_course_format() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = CheckpointDir::new(dir.path());
        assert_eq!(checkpoints.load(0).await.unwrap(), None);
        checkpoints
            .save(
                0,
                &Checkpoint {
                    batch_id: 20,
                    offset: 255,
                },
            )
            .await
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("partition-0.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json, serde_json::json!({"batch_id": 20, "offset": 255}));
        assert_eq!(
            checkpoints.load(0).await.unwrap(),
            Some(Checkpoint {
                batch_id: 20,
                offset: 255
            })
        );
        assert!(!dir.path().join("partition-0.json.tmp").exists());
    }

    #[tokio::test]
    async fn a_corrupt_or_half_written_checkpoint_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = CheckpointDir::new(dir.path());
        for bad in [
            "",
            "{\"batch_id\": 3, \"off",
            "[]",
            "{\"batch_id\": 3}",
            "{\"batch_id\": 1, \"offset\": -5}",
        ] {
            std::fs::write(dir.path().join("partition-1.json"), bad).unwrap();
            let err = checkpoints.load(1).await.unwrap_err();
            assert!(err.to_string().contains("partition-1.json"), "{err}");
        }
    }
}
