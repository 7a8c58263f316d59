//! One writer per output. Two consumers of the same partition would both write
//! batch M and race on the checkpoint, and two collectors would append the same
//! lines twice, so the second one refuses to start. The lock is an OS file
//! lock: it vanishes with the process, so a crash never leaves a stale lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::Error;

#[derive(Debug)]
pub struct OutputLock {
    _file: File,
}

impl OutputLock {
    /// The lock of one partition's checkpoint (or stats) directory.
    pub fn partition(dir: &Path, partition: i32) -> Result<Self, Error> {
        Self::acquire(dir, &format!(".partition-{partition}.lock"), || {
            format!("partition {partition}")
        })
    }

    /// Locks `dir/name`; `what` names the output for the error message.
    pub fn acquire(dir: &Path, name: &str, what: impl FnOnce() -> String) -> Result<Self, Error> {
        let path = dir.join(name);
        let unwritable = |cause: std::io::Error| Error::CheckpointDir {
            dir: dir.display().to_string(),
            cause,
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
                what: what(),
                lock: path.display().to_string(),
            }),
            Err(TryLockError::Error(err)) => Err(unwritable(err)),
        }
    }
}
