//! The f24 variant: per-station running stats and the offset, one
//! `partition-N.json` per partition, replaced atomically after each batch.

use batch_store::CheckpointDir;
use bytes::Bytes;
use report::Report;
use tokio_util::sync::CancellationToken;

use super::{claim, retry, Committed, Guard};
use crate::stats::PartitionStats;
use crate::{ConsumerOptions, Result};

pub(crate) struct StatsSink {
    dir: CheckpointDir,
    partition: i32,
    state: Option<PartitionStats>,
    guard: Guard,
}

impl StatsSink {
    /// Takes the partition's lock, applies `--reset` and loads the stats.
    pub(crate) async fn open(
        options: &ConsumerOptions,
        partition: i32,
        dir: &CheckpointDir,
    ) -> Result<Self> {
        let guard = claim(
            options,
            dir,
            partition,
            "stats removed (--reset): starting over at offset 0",
        )
        .await?;
        let state = PartitionStats::load(dir, partition).await?;
        Ok(StatsSink {
            dir: dir.clone(),
            partition,
            state,
            guard,
        })
    }

    pub(crate) fn resume_offset(&self) -> Option<i64> {
        self.state.as_ref().map(|state| state.offset)
    }

    pub(crate) fn state_path(&self) -> String {
        self.dir.path(self.partition).display().to_string()
    }

    pub(crate) fn add(&mut self, report: &Report) {
        self.state.get_or_insert_with(PartitionStats::default).add(
            &report.station_id,
            &report.date,
            report.degrees,
        );
    }

    /// Saves state and offset as one file, retried until it is written (a
    /// full disk) or shutdown comes.
    pub(crate) async fn commit(
        &mut self,
        next_offset: i64,
        shutdown: &CancellationToken,
    ) -> Result<Committed> {
        let state = self.state.get_or_insert_with(PartitionStats::default);
        state.offset = next_offset;
        let name = CheckpointDir::file_name(self.partition);
        let bytes = Bytes::from(state.to_json());
        // As with a checkpoint: the replace is atomic, so the old file
        // stays whole while a full disk refuses the new one.
        let (guard, dir) = (&self.guard, &self.dir);
        let saved = retry(self.partition, None, "save the stats", shutdown, |_| {
            guard.put_state(dir, &name, bytes.clone())
        })
        .await?;
        Ok(Committed {
            batches: usize::from(saved.is_some()),
            interrupted: saved.is_none(),
        })
    }

    pub(crate) fn describe(&self) -> String {
        match &self.state {
            Some(state) => format!("offset {}, {} stations", state.offset, state.stations.len()),
            None => "no stats".into(),
        }
    }
}
