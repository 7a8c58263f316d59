//! One writer per partition and checkpoint directory. Two consumers of the
//! same partition would both write batch M and race on the checkpoint, so
//! the second one refuses to start. The lock is an OS file lock: it vanishes
//! with the process, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;

use crate::Error;

pub struct PartitionLock {
    _file: File,
}

impl PartitionLock {
    pub fn acquire(dir: &std::path::Path, partition: i32) -> Result<Self, Error> {
        let path: PathBuf = dir.join(format!(".partition-{partition}.lock"));
        let unwritable = |err: std::io::Error| Error::CheckpointDir {
            dir: dir.display().to_string(),
            reason: err.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(unwritable)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(unwritable)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::AlreadyRunning {
                partition,
                lock: path.display().to_string(),
            }),
            Err(TryLockError::Error(err)) => Err(unwritable(err)),
        }
    }
}
