//! Where a partition's records go, and how they become durable together with
//! the offset to resume from: Parquet batch files plus a checkpoint, the
//! running per-station stats file, or the JSON Lines archive.

use std::sync::Arc;
use std::time::Duration;

use batch_store::batch_file::{BatchBuilder, BatchFile, DATA_DIR};
use batch_store::{Checkpoint, CheckpointDir, Store, TMP_SUFFIX};
use bytes::Bytes;
use report::Report;
use tokio_util::sync::CancellationToken;

use crate::crash::{self, CrashPoint};
use crate::jsonl::{Archive, BatchLines};
use crate::lock::OutputLock;
use crate::stats::PartitionStats;
use crate::{ConsumerOptions, Output, Result};

pub(crate) enum Sink {
    Parquet(Box<ParquetSink>),
    Stats(StatsSink),
    JsonLines(JsonLinesSink),
}

pub(crate) struct ParquetSink {
    store: Store,
    checkpoints: CheckpointDir,
    partition: i32,
    checkpoint: Option<Checkpoint>,
    rows: BatchBuilder,
    _lock: OutputLock,
}

pub(crate) struct StatsSink {
    dir: CheckpointDir,
    partition: i32,
    state: Option<PartitionStats>,
    _lock: OutputLock,
}

pub(crate) struct JsonLinesSink {
    archive: Arc<Archive>,
    topic: String,
    partition: i32,
    resume: Option<i64>,
    /// The batch being collected.
    lines: BatchLines,
}

impl Sink {
    /// Takes the partition's lock, applies `--reset`, and loads the state to resume from.
    pub(crate) async fn open(options: &ConsumerOptions, partition: i32) -> Result<Self> {
        match &options.output {
            Output::Parquet { store, checkpoints } => {
                let lock = OutputLock::partition(checkpoints.dir(), partition)?;
                if options.reset && checkpoints.remove(partition).await? {
                    tracing::warn!(
                        partition,
                        "checkpoint removed (--reset): starting over at offset 0, batch 0"
                    );
                }
                let checkpoint = checkpoints.load(partition).await?;
                remove_leftovers(store, partition).await;
                Ok(Sink::Parquet(Box::new(ParquetSink {
                    store: store.clone(),
                    checkpoints: checkpoints.clone(),
                    partition,
                    checkpoint,
                    rows: BatchBuilder::default(),
                    _lock: lock,
                })))
            }
            Output::Stats { dir } => {
                let lock = OutputLock::partition(dir.dir(), partition)?;
                if options.reset && dir.remove(partition).await? {
                    tracing::warn!(
                        partition,
                        "stats removed (--reset): starting over at offset 0"
                    );
                }
                let name = CheckpointDir::file_name(partition);
                let state = match dir.store().get(&name).await {
                    Ok(bytes) => Some(PartitionStats::from_json(&bytes).map_err(|reason| {
                        batch_store::Error::CorruptCheckpoint {
                            path: dir.path(partition).display().to_string(),
                            reason,
                        }
                    })?),
                    Err(err) if err.is_not_found() => None,
                    Err(err) => return Err(err.into()),
                };
                Ok(Sink::Stats(StatsSink {
                    dir: dir.clone(),
                    partition,
                    state,
                    _lock: lock,
                }))
            }
            Output::JsonLines { archive } => Ok(Sink::JsonLines(JsonLinesSink {
                resume: archive.resume_offset(&options.topic, partition).await,
                archive: Arc::clone(archive),
                topic: options.topic.clone(),
                partition,
                lines: BatchLines::default(),
            })),
        }
    }

    /// The offset the committed state continues at; `None` before the first commit.
    pub(crate) fn resume_offset(&self) -> Option<i64> {
        match self {
            Sink::Parquet(sink) => sink.checkpoint.map(|cp| cp.offset),
            Sink::Stats(sink) => sink.state.as_ref().map(|state| state.offset),
            Sink::JsonLines(sink) => sink.resume,
        }
    }

    /// The local file that holds the resume offset, for messages.
    pub(crate) fn state_path(&self) -> String {
        match self {
            Sink::Parquet(sink) => sink.checkpoints.path(sink.partition).display().to_string(),
            Sink::Stats(sink) => sink.dir.path(sink.partition).display().to_string(),
            Sink::JsonLines(sink) => sink.archive.checkpoint_path().display().to_string(),
        }
    }

    /// Adds the record at `offset` to the batch being collected.
    pub(crate) fn add(&mut self, report: &Report, offset: i64) {
        match self {
            Sink::Parquet(sink) => sink
                .rows
                .push(&report.station_id, &report.date, report.degrees),
            Sink::Stats(sink) => sink.state.get_or_insert_with(PartitionStats::default).add(
                &report.station_id,
                &report.date,
                report.degrees,
            ),
            Sink::JsonLines(sink) => sink.lines.add(report, sink.partition, offset),
        }
    }

    /// Makes everything added since the last commit durable together with
    /// `next_offset`. `false`: shutdown interrupted it and nothing moved.
    pub(crate) async fn commit(
        &mut self,
        next_offset: i64,
        shutdown: &CancellationToken,
    ) -> Result<bool> {
        match self {
            Sink::Parquet(sink) => {
                let batch_id = sink.checkpoint.map_or(0, |cp| cp.batch_id + 1);
                let checkpoint = Checkpoint {
                    batch_id,
                    offset: next_offset,
                };
                let bytes = sink.rows.finish()?;
                let done = commit(
                    &sink.store,
                    &sink.checkpoints,
                    sink.partition,
                    &checkpoint,
                    bytes,
                    shutdown,
                )
                .await?;
                if done {
                    sink.checkpoint = Some(checkpoint);
                }
                Ok(done)
            }
            Sink::Stats(sink) => {
                let state = sink.state.get_or_insert_with(PartitionStats::default);
                state.offset = next_offset;
                let name = CheckpointDir::file_name(sink.partition);
                let bytes = Bytes::from(state.to_json());
                // As with a checkpoint: the replace is atomic, so the old file
                // stays whole while a full disk refuses the new one.
                let store = sink.dir.store();
                Ok(retry(sink.partition, None, "save the stats", shutdown, |_| {
                    store.put_atomic(&name, bytes.clone())
                })
                .await)
            }
            Sink::JsonLines(sink) => {
                let lines = std::mem::take(&mut sink.lines);
                sink.archive
                    .commit(&sink.topic, sink.partition, next_offset, lines)
                    .await?;
                sink.resume = Some(next_offset);
                Ok(true)
            }
        }
    }

    /// What the committed state says, for the run summary.
    pub(crate) fn describe(&self) -> String {
        match self {
            Sink::Parquet(sink) => match sink.checkpoint {
                Some(cp) => format!("batch {} offset {}", cp.batch_id, cp.offset),
                None => "no checkpoint".into(),
            },
            Sink::Stats(sink) => match &sink.state {
                Some(state) => {
                    format!("offset {}, {} stations", state.offset, state.stations.len())
                }
                None => "no stats".into(),
            },
            Sink::JsonLines(sink) => match sink.resume {
                Some(offset) => format!("offset {offset}"),
                None => "no offset".into(),
            },
        }
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
    for name in names.iter().filter(|name| BatchFile::is_tmp_of(partition, name)) {
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

/// Makes one encoded batch durable, then the checkpoint naming it. Store failures
/// are retried with backoff (the checkpoint never moves before the file is in
/// place); returns `false` if shutdown interrupted the retries, leaving the
/// batch uncommitted, which is safe: it is read again on the next start.
async fn commit(
    store: &Store,
    checkpoints: &CheckpointDir,
    partition: i32,
    checkpoint: &Checkpoint,
    bytes: Bytes,
    shutdown: &CancellationToken,
) -> Result<bool> {
    crash::begin_commit();
    let file = BatchFile::new(partition, checkpoint.batch_id);
    let written = retry(
        partition,
        Some(checkpoint.batch_id),
        "write the batch file",
        shutdown,
        |attempt| write_batch_file(store, &file, bytes.clone(), attempt > 1),
    )
    .await;
    if !written {
        return Ok(false);
    }

    if crash::armed(CrashPoint::DuringCheckpoint) {
        let encoded = CheckpointDir::encode(checkpoint);
        let tmp = format!("{}{TMP_SUFFIX}", CheckpointDir::file_name(partition));
        checkpoints
            .store()
            .write_new(&tmp, encoded.slice(..encoded.len() / 2))
            .await?;
        crash::abort(CrashPoint::DuringCheckpoint);
    }
    // A full or failing disk where the checkpoints live: the previous
    // checkpoint stays as it was (the save is atomic), so retrying until
    // there is room again is safe, and stopping instead is too.
    let saved = retry(
        partition,
        Some(checkpoint.batch_id),
        "save the checkpoint",
        shutdown,
        |_| checkpoints.save(partition, checkpoint),
    )
    .await;
    Ok(saved)
}

/// Runs `step` until it succeeds, with backoff from 200 ms to 5 s and a line
/// per failure (`cannot {what}; retrying`); `false` if shutdown came first.
async fn retry<F, Fut>(
    partition: i32,
    batch: Option<u64>,
    what: &str,
    shutdown: &CancellationToken,
    mut step: F,
) -> bool
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = batch_store::Result<()>>,
{
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 1;
    while let Err(err) = step(attempt).await {
        tracing::warn!(partition, batch, attempt, error = %err, retry_in = ?backoff, "cannot {what}; retrying");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return false,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
        attempt += 1;
    }
    if attempt > 1 {
        tracing::info!(partition, batch, "{what}: done after retrying");
    }
    true
}

async fn write_batch_file(
    store: &Store,
    file: &BatchFile,
    bytes: Bytes,
    retrying: bool,
) -> batch_store::Result<()> {
    let tmp = file.tmp_path();
    if retrying {
        // A failed write may still hold the HDFS lease on the temp file;
        // deleting it lets the new write start clean.
        let _ = store.delete(&tmp).await;
    }
    store.write_new(&tmp, bytes).await?;
    crash::point(CrashPoint::AfterTempFile);
    store.rename_over(&tmp, &file.path()).await?;
    crash::point(CrashPoint::AfterRename);
    Ok(())
}
