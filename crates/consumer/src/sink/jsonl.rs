//! The data-collector variant: a partition's share of the JSON Lines archive
//! (see `crate::jsonl` for the archive and its commit protocol).

use std::sync::Arc;

use report::Report;

use super::Committed;
use crate::jsonl::{Archive, BatchLines};
use crate::{ConsumerOptions, Result};

pub(crate) struct JsonLinesSink {
    archive: Arc<Archive>,
    topic: String,
    partition: i32,
    resume: Option<i64>,
    /// The batch being collected.
    lines: BatchLines,
}

impl JsonLinesSink {
    pub(crate) async fn open(
        options: &ConsumerOptions,
        partition: i32,
        archive: &Arc<Archive>,
    ) -> Self {
        JsonLinesSink {
            resume: archive.resume_offset(&options.topic, partition).await,
            archive: Arc::clone(archive),
            topic: options.topic.clone(),
            partition,
            lines: BatchLines::default(),
        }
    }

    pub(crate) fn resume_offset(&self) -> Option<i64> {
        self.resume
    }

    pub(crate) fn state_path(&self) -> String {
        self.archive.checkpoint_path().display().to_string()
    }

    pub(crate) fn add(&mut self, report: &Report, offset: i64) {
        self.lines.add(report, self.partition, offset);
    }

    pub(crate) async fn commit(&mut self, next_offset: i64) -> Result<Committed> {
        let lines = std::mem::take(&mut self.lines);
        self.archive
            .commit(&self.topic, self.partition, next_offset, lines)
            .await?;
        self.resume = Some(next_offset);
        Ok(Committed {
            batches: 1,
            interrupted: false,
        })
    }

    pub(crate) fn describe(&self) -> String {
        match self.resume {
            Some(offset) => format!("offset {offset}"),
            None => "no offset".into(),
        }
    }
}
