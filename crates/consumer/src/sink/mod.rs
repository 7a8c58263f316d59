//! Where a partition's records go, and how they become durable together with
//! the offset to resume from: Parquet batch files plus a checkpoint
//! (`parquet`), the running per-station stats file (`stats`), or the JSON
//! Lines archive (`jsonl`). This module only dispatches, and holds what the
//! sinks share.

mod jsonl;
mod parquet;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use report::Report;
use tokio_util::sync::CancellationToken;

use batch_store::CheckpointDir;

use crate::lock::OutputLock;
use crate::owner::Owner;
use crate::partition::decode;
use crate::{ConsumerOptions, Output, Result};
use jsonl::JsonLinesSink;
use parquet::ParquetSink;
use stats::StatsSink;

pub(crate) enum Sink {
    Parquet(Box<ParquetSink>),
    Stats(StatsSink),
    JsonLines(JsonLinesSink),
}

/// What a call that commits did: how many batches became durable (in the
/// order they were handed over), and whether shutdown interrupted a commit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Committed {
    pub batches: usize,
    pub interrupted: bool,
}

impl Sink {
    /// Takes the partition's lock, applies `--reset`, and loads the state to resume from.
    pub(crate) async fn open(options: &ConsumerOptions, partition: i32) -> Result<Self> {
        Ok(match &options.output {
            Output::Parquet { store, checkpoints } => Sink::Parquet(Box::new(
                ParquetSink::open(options, partition, store, checkpoints).await?,
            )),
            Output::Stats { dir } => Sink::Stats(StatsSink::open(options, partition, dir).await?),
            Output::JsonLines { archive, format } => {
                Sink::JsonLines(JsonLinesSink::open(options, partition, archive, *format).await)
            }
        })
    }

    /// The offset the committed state continues at; `None` before the first commit.
    pub(crate) fn resume_offset(&self) -> Option<i64> {
        match self {
            Sink::Parquet(sink) => sink.resume_offset(),
            Sink::Stats(sink) => sink.resume_offset(),
            Sink::JsonLines(sink) => sink.resume_offset(),
        }
    }

    /// The local file that holds the resume offset, for messages.
    pub(crate) fn state_path(&self) -> String {
        match self {
            Sink::Parquet(sink) => sink.state_path(),
            Sink::Stats(sink) => sink.state_path(),
            Sink::JsonLines(sink) => sink.state_path(),
        }
    }

    /// Adds the message at `offset` to the batch being collected; the reason
    /// it is skipped if it is not a record (`scratch` is reused for decoding).
    pub(crate) fn add(
        &mut self,
        scratch: &mut Report,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: i64,
    ) -> Result<(), String> {
        match self {
            Sink::Parquet(sink) => {
                decode(scratch, value)?;
                sink.add(scratch);
            }
            Sink::Stats(sink) => {
                decode(scratch, value)?;
                sink.add(scratch);
            }
            Sink::JsonLines(sink) => return sink.add(scratch, key, value, offset),
        }
        Ok(())
    }

    /// What the warning for a skipped message says.
    pub(crate) fn skip_note(&self) -> String {
        match self {
            Sink::JsonLines(sink) => sink.skip_note(),
            _ => "skipping a message that is not a valid Report".into(),
        }
    }

    /// Hands everything added since the last commit over to become durable
    /// together with `next_offset`. The Parquet sink writes the batch file in
    /// the background and commits older batches whose files are written,
    /// waiting only while `max_uploads` are under way; the other sinks commit
    /// at once.
    pub(crate) async fn commit(
        &mut self,
        next_offset: i64,
        shutdown: &CancellationToken,
    ) -> Result<Committed> {
        match self {
            Sink::Parquet(sink) => sink.commit(next_offset, shutdown).await,
            Sink::Stats(sink) => sink.commit(next_offset, shutdown).await,
            Sink::JsonLines(sink) => sink.commit(next_offset).await,
        }
    }

    /// Commits the batches whose files are written, oldest first, up to the
    /// first that is still being written.
    pub(crate) async fn settle(&mut self, shutdown: &CancellationToken) -> Result<Committed> {
        match self {
            Sink::Parquet(sink) => sink.settle(shutdown).await,
            _ => Ok(Committed::default()),
        }
    }

    /// Commits every batch handed over, waiting for their files.
    pub(crate) async fn finish(&mut self, shutdown: &CancellationToken) -> Result<Committed> {
        match self {
            Sink::Parquet(sink) => sink.finish(shutdown).await,
            _ => Ok(Committed::default()),
        }
    }

    /// Resolves once the oldest batch file being written is written (never,
    /// if none is), so a partition waiting for records can commit it.
    pub(crate) fn upload_ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let ended = match self {
            Sink::Parquet(sink) => Some(sink.upload_ended()),
            _ => None,
        };
        async move {
            match ended {
                Some(ended) => ended.await,
                None => std::future::pending().await,
            }
        }
    }

    /// What the committed state says, for the run summary.
    pub(crate) fn describe(&self) -> String {
        match self {
            Sink::Parquet(sink) => sink.describe(),
            Sink::Stats(sink) => sink.describe(),
            Sink::JsonLines(sink) => sink.describe(),
        }
    }
}

/// What makes this process the one writer of a partition's state: an OS
/// lock on a local checkpoint directory, or on a shared one (HDFS) a claim
/// that fences every earlier writer (`crate::owner`).
pub(crate) enum Guard {
    /// Held until the sink is dropped.
    Lock {
        _lock: OutputLock,
    },
    Owner(Arc<Owner>),
}

impl Guard {
    /// Replaces the state file `name` in `dir` atomically; a fenced owner's
    /// attempt fails with [`batch_store::Error::Fenced`].
    pub(crate) async fn put_state(
        &self,
        dir: &CheckpointDir,
        name: &str,
        bytes: bytes::Bytes,
    ) -> batch_store::Result<()> {
        match self {
            Guard::Lock { .. } => dir.store().put_atomic(name, bytes).await,
            Guard::Owner(owner) => Box::pin(owner.put_atomic(name, bytes)).await,
        }
    }
}

/// Takes `partition`'s state file in `dir` (see `Guard`), then applies
/// `--reset` (removing the file, with `removed` as the warning), so a second
/// process can neither run beside this one nor reset under it.
async fn claim(
    options: &ConsumerOptions,
    dir: &CheckpointDir,
    partition: i32,
    removed: &str,
) -> Result<Guard> {
    let guard = if dir.is_local() {
        Guard::Lock {
            _lock: OutputLock::partition(dir.dir(), partition)?,
        }
    } else {
        Guard::Owner(Arc::new(Owner::claim(dir.store(), partition).await?))
    };
    if options.reset && dir.remove(partition).await? {
        tracing::warn!(partition, "{removed}");
    }
    Ok(guard)
}

/// Runs `step` until it succeeds, with backoff from 200 ms to 5 s and a line
/// per failure (`cannot {what}; retrying`); `Ok(None)` if shutdown came
/// first. Being fenced is final: that error is returned at once.
async fn retry<T, F, Fut>(
    partition: i32,
    batch: Option<u64>,
    what: &str,
    shutdown: &CancellationToken,
    mut step: F,
) -> batch_store::Result<Option<T>>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = batch_store::Result<T>>,
{
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match step(attempt).await {
            Ok(value) => {
                if attempt > 1 {
                    tracing::info!(partition, batch, "{what}: done after retrying");
                }
                return Ok(Some(value));
            }
            Err(err @ batch_store::Error::Fenced { .. }) => return Err(err),
            Err(err) => {
                tracing::warn!(partition, batch, attempt, error = %err, retry_in = ?backoff, "cannot {what}; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return Ok(None),
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
        attempt += 1;
    }
}
