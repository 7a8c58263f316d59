//! Who may commit a partition whose checkpoints are on a shared file system
//! (HDFS), where no OS lock reaches the other hosts, and how a consumer that
//! lost it is fenced.
//!
//! Taking a partition, a consumer claims the next epoch: it makes a directory
//! of its own and renames it to `partition-N.owner-E` (a rename that fails if
//! that name exists, so two claims never share an epoch). It then gives up if
//! a newer owner directory exists, and otherwise fences every older owner by
//! renaming its directory to `partition-N.fenced-E'`; only then does it read
//! the checkpoint. Everything an owner makes durable goes through its own
//! directory: a batch file is written there as a temp file and renamed into
//! `<store>/data/`, a checkpoint (or stats file) is written there and renamed
//! over `partition-N.json`, and writes never create the directory. A fenced
//! owner's directory is gone, so its next rename fails on the NameNode itself
//! (the source does not exist) and so does any new write: there is no window
//! between a check and the act, because the act is the check. Whatever it
//! renamed before the fence happened before the new owner read the checkpoint,
//! which is the same as a crash at that moment, and the new owner resumes from
//! that checkpoint.
//!
//! The claim order is linearized by the NameNode: of two claims, the one that
//! looks for newer owners after the other was made sees it and gives up, or
//! was made before the other fenced, and is fenced.

use std::time::{SystemTime, UNIX_EPOCH};

use batch_store::{Error as StoreError, Store, TMP_SUFFIX};
use bytes::Bytes;

use crate::Result;

/// The testing switch that turns fencing off (older owners are left as they
/// are), to show what it prevents.
pub const NO_FENCING_ENV: &str = "P7_NO_FENCING";

/// This process's claim on one partition.
#[derive(Debug)]
pub(crate) struct Owner {
    store: Store,
    dir: String,
}

fn owner_dir(partition: i32, epoch: u64) -> String {
    format!("partition-{partition}.owner-{epoch}")
}

fn fenced_dir(partition: i32, epoch: u64) -> String {
    format!("partition-{partition}.fenced-{epoch}")
}

/// The epochs of the owner and fenced directories of `partition` in `store`.
async fn epochs(store: &Store, partition: i32) -> Result<(Vec<u64>, Vec<u64>)> {
    let (owner, fenced) = (
        format!("partition-{partition}.owner-"),
        format!("partition-{partition}.fenced-"),
    );
    let (mut owners, mut fenceds) = (Vec::new(), Vec::new());
    for name in store.list_dirs("").await? {
        if let Some(epoch) = name.strip_prefix(&owner).and_then(|e| e.parse().ok()) {
            owners.push(epoch);
        } else if let Some(epoch) = name.strip_prefix(&fenced).and_then(|e| e.parse().ok()) {
            fenceds.push(epoch);
        }
    }
    owners.sort_unstable();
    fenceds.sort_unstable();
    Ok((owners, fenceds))
}

impl Owner {
    /// Claims `partition` in the checkpoint directory `store` and fences
    /// every older owner (see the module documentation).
    pub(crate) async fn claim(store: &Store, partition: i32) -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let claim = format!("partition-{partition}.claim-{}-{nanos}", std::process::id());
        store.mkdir(&claim).await?;
        let (owners, fenced) = epochs(store, partition).await?;
        let mut epoch = owners.iter().chain(&fenced).max().map_or(1, |e| e + 1);
        loop {
            match store.rename_new(&claim, &owner_dir(partition, epoch)).await {
                Ok(()) => break,
                Err(StoreError::Exists { .. }) => epoch += 1,
                Err(err) => {
                    let _ = store.delete_tree(&claim).await;
                    return Err(err.into());
                }
            }
        }
        let owner = Owner {
            store: store.clone(),
            dir: owner_dir(partition, epoch),
        };
        let (owners, fenced) = epochs(store, partition).await?;
        if let Some(newer) = owners.iter().find(|&&e| e > epoch) {
            let _ = store
                .rename_new(&owner.dir, &fenced_dir(partition, epoch))
                .await;
            return Err(StoreError::Fenced {
                store: store.location(),
                dir: owner.dir.clone(),
                reason: format!("a newer consumer claimed it at the same time (epoch {newer})"),
            }
            .into());
        }
        if std::env::var_os(NO_FENCING_ENV).is_some() {
            tracing::warn!(
                partition,
                "{NO_FENCING_ENV} is set: older owners are NOT fenced"
            );
        } else {
            for &older in owners.iter().filter(|&&e| e < epoch) {
                match store
                    .rename_new(&owner_dir(partition, older), &fenced_dir(partition, older))
                    .await
                {
                    Ok(()) => {
                        tracing::info!(
                            partition,
                            epoch = older,
                            "fenced the partition's previous owner"
                        )
                    }
                    // Another claimer fenced it first.
                    Err(StoreError::NotFound { .. } | StoreError::Exists { .. }) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            // What fenced owners left: temp files nobody will rename.
            let (_, fenced_now) = epochs(store, partition).await?;
            for older in fenced.iter().chain(&fenced_now).filter(|&&e| e < epoch) {
                let _ = store.delete_tree(&fenced_dir(partition, *older)).await;
            }
        }
        tracing::info!(partition, epoch, "claimed the partition");
        Ok(owner)
    }

    /// The path of a temp file named `name` in this owner's directory.
    pub(crate) fn staged(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// Writes a temp file of this owner (never creating its directory).
    pub(crate) async fn write(&self, path: &str, bytes: Bytes) -> batch_store::Result<()> {
        // Boxed: the HDFS client's write is a large future, and nested in
        // the commit's own it overflowed a worker thread's stack.
        let written = Box::pin(self.store.write_in_dir(path, bytes)).await;
        self.unless_fenced(written).await
    }

    /// Renames this owner's temp file `staged` over `to` in `target`.
    pub(crate) async fn rename_into(
        &self,
        staged: &str,
        target: &Store,
        to: &str,
    ) -> batch_store::Result<()> {
        let renamed = Box::pin(self.store.rename_to(staged, target, to)).await;
        self.unless_fenced(renamed).await
    }

    /// Replaces `name` in the checkpoint directory atomically, through this
    /// owner's directory.
    pub(crate) async fn put_atomic(&self, name: &str, bytes: Bytes) -> batch_store::Result<()> {
        let staged = self.staged(&format!("{name}{TMP_SUFFIX}"));
        Box::pin(self.write(&staged, bytes)).await?;
        self.rename_into(&staged, &self.store.clone(), name).await
    }

    /// A failure because this owner's directory is gone is [`StoreError::Fenced`].
    async fn unless_fenced(&self, outcome: batch_store::Result<()>) -> batch_store::Result<()> {
        match outcome {
            Err(err) if err.is_not_found() => match self.store.exists(&self.dir).await {
                Ok(false) => Err(StoreError::Fenced {
                    store: self.store.location(),
                    dir: self.dir.clone(),
                    reason: "another consumer has taken the partition over".into(),
                }),
                _ => Err(err),
            },
            outcome => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_newer_claim_fences_the_older_owner_whose_next_rename_fails() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Store::local(dir.path().join("cp"));
        let data = Store::local(dir.path().join("store"));
        data.mkdir("data").await.unwrap();
        let first = Owner::claim(&checkpoints, 0).await.unwrap();
        assert_eq!(first.staged("x"), "partition-0.owner-1/x");
        let staged = first.staged("batch.tmp");
        first
            .write(&staged, Bytes::from_static(b"old"))
            .await
            .unwrap();

        let second = Owner::claim(&checkpoints, 0).await.unwrap();
        assert_eq!(second.staged("x"), "partition-0.owner-2/x");
        let err = first
            .rename_into(&staged, &data, "data/batch")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
        assert!(!dir.path().join("store/data/batch").exists());
        let err = first
            .put_atomic("partition-0.json", Bytes::from_static(b"{}"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
        assert!(
            !dir.path().join("cp/partition-0.owner-1").exists(),
            "a fenced owner's write must not make its directory again"
        );

        second
            .put_atomic("partition-0.json", Bytes::from_static(b"{\"new\":1}"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("cp/partition-0.json")).unwrap(),
            b"{\"new\":1}"
        );
        // Other partitions are claimed on their own.
        let other = Owner::claim(&checkpoints, 1).await.unwrap();
        assert_eq!(other.staged("x"), "partition-1.owner-1/x");
        let third = Owner::claim(&checkpoints, 0).await.unwrap();
        assert_eq!(third.staged("x"), "partition-0.owner-3/x");
        assert!(
            !dir.path().join("cp/partition-0.fenced-1").exists(),
            "what fenced owners left is removed"
        );
    }
}
