//! Parquet batch files plus the course's `partition-N.json` checkpoint: each
//! batch is written as a temp file, renamed into place, then checkpointed,
//! strictly in batch order, while the files of later batches upload.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use batch_store::batch_file::{BatchBuilder, BatchFile, DATA_DIR};
use batch_store::{Checkpoint, CheckpointDir, Store, TMP_SUFFIX};
use bytes::Bytes;
use report::Report;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{claim, retry, Committed, Guard};
use crate::crash::{self, CrashPoint};
use crate::owner::Owner;
use crate::{ConsumerOptions, Result};

pub(crate) struct ParquetSink {
    checkpoints: CheckpointDir,
    partition: i32,
    /// What the checkpoint on disk says: the last batch committed.
    checkpoint: Option<Checkpoint>,
    rows: BatchBuilder,
    /// Batches whose files are being written, oldest first; each is renamed
    /// into place and checkpointed strictly in this order (see `finish_oldest`).
    uploads: VecDeque<Upload>,
    max_uploads: usize,
    /// Woken whenever an upload ends.
    upload_ended: Arc<Notify>,
    /// Where temp files are written and how they are moved into place.
    staging: Staging,
    guard: Guard,
}

/// A batch handed over for commit whose temp file is being written.
struct Upload {
    file: BatchFile,
    checkpoint: Checkpoint,
    bytes: Bytes,
    /// The temp file written; `None`: shutdown interrupted the write's retries.
    written: tokio::task::JoinHandle<batch_store::Result<Option<String>>>,
    /// Set once `written` has ended.
    done: Arc<AtomicBool>,
}

/// Batch files of one partition being written at once: a file's close waits
/// for the NameNode, so uploads overlap while renames and checkpoints stay in
/// batch order. Bounded in count, and for large batches in records
/// (`MAX_RECORDS_IN_FLIGHT`), since each holds its encoded file in memory.
pub(crate) fn max_uploads(max_records: usize) -> usize {
    (MAX_RECORDS_IN_FLIGHT / max_records.max(1)).clamp(1, MAX_UPLOADS)
}

const MAX_UPLOADS: usize = 8;
const MAX_RECORDS_IN_FLIGHT: usize = 2_000_000;

impl ParquetSink {
    /// Takes the partition's lock, applies `--reset`, loads the checkpoint
    /// and removes temp files an earlier run left.
    pub(crate) async fn open(
        options: &ConsumerOptions,
        partition: i32,
        store: &Store,
        checkpoints: &CheckpointDir,
    ) -> Result<Self> {
        let guard = claim(
            options,
            checkpoints,
            partition,
            "checkpoint removed (--reset): starting over at offset 0, batch 0",
        )
        .await?;
        let staging = match &guard {
            Guard::Lock { .. } => Staging::Store(store.clone()),
            Guard::Owner(owner) => {
                // Batch files are renamed into `data/`, which a rename does
                // not make (a temp file written there would have).
                store.mkdir(DATA_DIR).await?;
                Staging::Owner {
                    owner: Arc::clone(owner),
                    checkpoints: checkpoints.store().clone(),
                    store: store.clone(),
                }
            }
        };
        let checkpoint = checkpoints.load(partition).await?;
        remove_leftovers(store, partition).await;
        Ok(ParquetSink {
            checkpoints: checkpoints.clone(),
            partition,
            checkpoint,
            rows: BatchBuilder::default(),
            uploads: VecDeque::new(),
            max_uploads: max_uploads(options.batch.max_records),
            upload_ended: Arc::new(Notify::new()),
            staging,
            guard,
        })
    }

    pub(crate) fn resume_offset(&self) -> Option<i64> {
        self.checkpoint.map(|cp| cp.offset)
    }

    pub(crate) fn state_path(&self) -> String {
        self.checkpoints.path(self.partition).display().to_string()
    }

    pub(crate) fn add(&mut self, report: &Report) {
        self.rows
            .push(&report.station_id, &report.date, report.degrees);
    }

    /// Starts writing the batch's file in the background and commits older
    /// batches whose files are written, waiting only while `max_uploads` are
    /// under way.
    pub(crate) async fn commit(
        &mut self,
        next_offset: i64,
        shutdown: &CancellationToken,
    ) -> Result<Committed> {
        let batch_id = self
            .uploads
            .back()
            .map(|upload| upload.checkpoint.batch_id + 1)
            .or_else(|| self.checkpoint.map(|cp| cp.batch_id + 1))
            .unwrap_or(0);
        let checkpoint = Checkpoint {
            batch_id,
            offset: next_offset,
        };
        let bytes = self.rows.finish()?;
        self.start_upload(checkpoint, bytes, shutdown);
        // Whatever is written already, and beyond that the oldest
        // (waiting for it) while too many are under way.
        self.commit_while(shutdown, |sink| {
            sink.oldest_written() || sink.uploads.len() > sink.max_uploads
        })
        .await
    }

    /// Commits every batch handed over, waiting for their files.
    pub(crate) async fn finish(&mut self, shutdown: &CancellationToken) -> Result<Committed> {
        self.commit_while(shutdown, |sink| !sink.uploads.is_empty())
            .await
    }

    /// Resolves once the oldest batch file being written is written (never,
    /// if none is), so a partition waiting for records can commit it. Owns
    /// what it waits on, so the sink stays free while it waits.
    pub(crate) fn upload_ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let oldest = if crash::holds_commit(self.uploads.len()) {
            None
        } else {
            self.uploads
                .front()
                .map(|upload| (Arc::clone(&upload.done), Arc::clone(&self.upload_ended)))
        };
        async move {
            let Some((done, ended)) = oldest else {
                return std::future::pending().await;
            };
            // `notify_one` leaves a permit when nobody waits, so an upload
            // that ends between the check and the wait is not missed.
            while !done.load(Ordering::Acquire) {
                ended.notified().await;
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self.checkpoint {
            Some(cp) => format!("batch {} offset {}", cp.batch_id, cp.offset),
            None => "no checkpoint".into(),
        }
    }

    /// Starts writing the batch's temp file in the background, retried with
    /// backoff until it is written or shutdown comes.
    fn start_upload(&mut self, checkpoint: Checkpoint, bytes: Bytes, shutdown: &CancellationToken) {
        let file = BatchFile::new(self.partition, checkpoint.batch_id);
        let (staging, partition, shutdown) =
            (self.staging.clone(), self.partition, shutdown.clone());
        let (data, ended) = (bytes.clone(), Arc::clone(&self.upload_ended));
        let done = Arc::new(AtomicBool::new(false));
        let done_flag = Arc::clone(&done);
        let written = tokio::spawn(async move {
            let mut attempts = TempFiles::default();
            let written = retry(
                partition,
                Some(checkpoint.batch_id),
                "write the batch file",
                &shutdown,
                |_| attempts.write(&staging, file, data.clone()),
            )
            .await;
            done_flag.store(true, Ordering::Release);
            ended.notify_one();
            written
        });
        self.uploads.push_back(Upload {
            file,
            checkpoint,
            bytes,
            written,
            done,
        });
    }

    /// Commits the batches whose files are written, oldest first, up to the
    /// first that is still being written.
    pub(crate) async fn settle(&mut self, shutdown: &CancellationToken) -> Result<Committed> {
        self.commit_while(shutdown, Self::oldest_written).await
    }

    /// Whether the oldest batch handed over has its temp file written.
    fn oldest_written(&self) -> bool {
        self.uploads
            .front()
            .is_some_and(|upload| upload.written.is_finished())
            && !crash::holds_commit(self.uploads.len())
    }

    /// Commits the oldest batch while `more` says so, stopping at the first
    /// one shutdown interrupts.
    async fn commit_while(
        &mut self,
        shutdown: &CancellationToken,
        more: impl Fn(&Self) -> bool,
    ) -> Result<Committed> {
        let mut committed = Committed::default();
        while more(self) {
            if !self.finish_oldest(shutdown).await? {
                committed.interrupted = true;
                break;
            }
            committed.batches += 1;
        }
        Ok(committed)
    }

    /// Commits the oldest batch handed over once its temp file is written:
    /// rename into place, then the checkpoint naming it, each retried with
    /// backoff (the checkpoint never moves before the file is in place).
    /// `false` if shutdown interrupted it, leaving it (and every later
    /// batch) uncommitted, which is safe: they are read again on the next
    /// start, and their temp files removed.
    async fn finish_oldest(&mut self, shutdown: &CancellationToken) -> Result<bool> {
        let Some(upload) = self.uploads.front_mut() else {
            return Ok(true);
        };
        let written = (&mut upload.written)
            .await
            .map_err(|join| crate::Error::Task {
                partition: self.partition,
                cause: join.into(),
            })?;
        let upload = self.uploads.pop_front().expect("looked at above");
        let Some(written) = written? else {
            return Ok(false);
        };
        crash::begin_commit();
        if crash::armed(CrashPoint::AfterUploads) {
            for later in &mut self.uploads {
                let _ = (&mut later.written).await;
            }
            crash::abort(CrashPoint::AfterUploads);
        }
        crash::point(CrashPoint::AfterTempFile);
        let (staging, partition, file, bytes) =
            (&self.staging, self.partition, upload.file, &upload.bytes);
        let mut attempts = TempFiles::written(written);
        let renamed = retry(
            partition,
            Some(file.batch),
            "move the batch file into place",
            shutdown,
            // A rename that failed may have left the temp file anywhere from
            // intact to gone: the retry writes a new one first.
            |_| {
                // The uploaded file first; after a failed rename, a new one.
                let next = attempts
                    .take_written()
                    .ok_or_else(|| attempts.write(staging, file, bytes.clone()));
                async move {
                    let tmp = match next {
                        Ok(tmp) => tmp,
                        Err(write) => write.await?,
                    };
                    staging.move_into_place(&tmp, file).await
                }
            },
        )
        .await?;
        if renamed.is_none() {
            return Ok(false);
        }
        crash::point(CrashPoint::AfterRename);

        let checkpoint = upload.checkpoint;
        if crash::armed(CrashPoint::DuringCheckpoint) {
            let encoded = CheckpointDir::encode(&checkpoint);
            let tmp = format!("{}{TMP_SUFFIX}", CheckpointDir::file_name(partition));
            self.checkpoints
                .store()
                .write_new(&tmp, encoded.slice(..encoded.len() / 2))
                .await?;
            crash::abort(CrashPoint::DuringCheckpoint);
        }
        // A full or failing disk where the checkpoints live: the previous
        // checkpoint stays as it was (the save is atomic), so retrying until
        // there is room again is safe, and stopping instead is too.
        let (checkpoints, guard) = (&self.checkpoints, &self.guard);
        let (name, encoded) = (
            CheckpointDir::file_name(partition),
            CheckpointDir::encode(&checkpoint),
        );
        let saved = retry(
            partition,
            Some(checkpoint.batch_id),
            "save the checkpoint",
            shutdown,
            |_| guard.put_state(checkpoints, &name, encoded.clone()),
        )
        .await?;
        if saved.is_some() {
            self.checkpoint = Some(checkpoint);
        }
        Ok(saved.is_some())
    }
}

/// Temp files of this partition are left by a crash; they were never part of
/// the committed data and would only confuse people listing the directory.
/// Best effort: a store that cannot list or delete right now (down, hung, in
/// safe mode) must not stop the start, since a temp file is overwritten by the
/// next write of its batch anyway, and the commit waits for the store itself.
async fn remove_leftovers(store: &Store, partition: i32) {
    let names = match store.list(DATA_DIR).await {
        Ok(names) => names,
        Err(err) => {
            tracing::warn!(partition, error = %err, "cannot look for temp files left by an earlier run; carrying on");
            return;
        }
    };
    for name in names
        .iter()
        .filter(|name| BatchFile::is_tmp_of(partition, name))
    {
        match store.delete(&batch_store::join(DATA_DIR, name)).await {
            Ok(_) => {
                tracing::info!(partition, file = %name, "removed a temp file left by an earlier run")
            }
            Err(err) => {
                tracing::warn!(partition, file = %name, error = %err, "cannot remove a temp file left by an earlier run; carrying on")
            }
        }
    }
}

/// How long a written temp file may read as shorter than it is before the
/// attempt counts as failed and a new one is written (its DataNodes may be
/// gone).
const WHOLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The temp files of one batch's write attempts, each of its own name
/// (see [`BatchFile::unique_tmp_path`]).
#[derive(Default)]
struct TempFiles {
    /// The last one written or tried.
    last: Option<String>,
    /// Whether `last` was written whole and not yet handed out.
    ready: bool,
}

impl TempFiles {
    /// After an upload: `tmp` holds the batch.
    fn written(tmp: String) -> Self {
        Self {
            last: Some(tmp),
            ready: true,
        }
    }

    /// The whole temp file, if one is ready and not handed out yet.
    fn take_written(&mut self) -> Option<String> {
        std::mem::take(&mut self.ready)
            .then(|| self.last.clone())
            .flatten()
    }

    /// Writes the batch to a new temp file and returns its path, removing
    /// the previous attempt's file first (best effort: a failed write may
    /// still hold the HDFS lease on it, and a leftover is removed at the
    /// next start anyway).
    fn write(
        &mut self,
        staging: &Staging,
        file: BatchFile,
        bytes: Bytes,
    ) -> Pin<Box<dyn Future<Output = batch_store::Result<String>> + Send>> {
        let tmp = staging.tmp_path(file);
        let previous = self.last.replace(tmp.clone());
        self.ready = false;
        let store = staging.clone();
        // Boxed: the HDFS client's write is a large future, and moved around
        // inside the commit's own it overflowed a worker thread's stack.
        Box::pin(async move {
            if let Some(previous) = previous {
                let _ = store.delete(&previous).await;
            }
            let len = bytes.len() as u64;
            store.write(&tmp, bytes).await?;
            // Readers trust every batch up to the checkpoint, so a batch is
            // only handed to the commit once readers see it whole (a rename
            // keeps the file's blocks as they are).
            store.wait_whole(&tmp, len, WHOLE_WITHIN).await?;
            Ok(tmp)
        })
    }
}

/// Where a batch's temp files are written, and how one is moved into place.
#[derive(Clone)]
enum Staging {
    /// Next to the batch files (`data/…tmp`), renamed within the store.
    Store(Store),
    /// In the owner's directory among the checkpoints, renamed into the
    /// store (same NameNode): a fenced owner can do neither (see `crate::owner`).
    Owner {
        owner: Arc<Owner>,
        checkpoints: Store,
        store: Store,
    },
}

impl Staging {
    fn tmp_path(&self, file: BatchFile) -> String {
        let tmp = file.unique_tmp_path();
        match self {
            Staging::Store(_) => tmp,
            Staging::Owner { owner, .. } => owner.staged(tmp.rsplit('/').next().unwrap_or(&tmp)),
        }
    }

    fn tmp_store(&self) -> &Store {
        match self {
            Staging::Store(store) => store,
            Staging::Owner { checkpoints, .. } => checkpoints,
        }
    }

    async fn write(&self, tmp: &str, bytes: Bytes) -> batch_store::Result<()> {
        match self {
            Staging::Store(store) => store.write_new(tmp, bytes).await,
            Staging::Owner { owner, .. } => Box::pin(owner.write(tmp, bytes)).await,
        }
    }

    async fn wait_whole(
        &self,
        tmp: &str,
        len: u64,
        within: std::time::Duration,
    ) -> batch_store::Result<()> {
        self.tmp_store().wait_whole(tmp, len, within).await
    }

    async fn delete(&self, tmp: &str) -> batch_store::Result<bool> {
        self.tmp_store().delete(tmp).await
    }

    async fn move_into_place(&self, tmp: &str, file: BatchFile) -> batch_store::Result<()> {
        match self {
            Staging::Store(store) => store.rename_over(tmp, &file.path()).await,
            Staging::Owner { owner, store, .. } => {
                Box::pin(owner.rename_into(tmp, store, &file.path())).await
            }
        }
    }
}
