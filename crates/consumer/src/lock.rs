//! One writer per output. Two consumers of the same partition would both write
//! batch M and race on the checkpoint, and two collectors would append the same
//! lines twice, so the second one refuses to start. The lock is an OS file
//! lock: it vanishes with the process, so a crash never leaves a stale lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Error;

/// How long a held lock is waited for before a second writer is refused:
/// a program killed outright takes its worker process with it (see
/// `program::supervise`), but that worker may need a moment to finish dying.
const HOLDER_EXIT_GRACE: Duration = Duration::from_secs(2);

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
        let deadline = Instant::now() + HOLDER_EXIT_GRACE;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::AlreadyRunning {
                        what: what(),
                        lock: path.display().to_string(),
                    })
                }
                Err(TryLockError::Error(err)) => return Err(unwritable(err)),
            }
        }
    }
}
