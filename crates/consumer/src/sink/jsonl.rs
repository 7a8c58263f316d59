//! The data-collector variant: a partition's share of the JSON Lines archive
//! (see `crate::jsonl` for the archive and its commit protocol).

use std::sync::Arc;

use report::Report;

use super::Committed;
use crate::jsonl::{Archive, BatchLines, DeadLetter, Format, JsonReading};
use crate::{ConsumerOptions, Result};

pub(crate) struct JsonLinesSink {
    archive: Arc<Archive>,
    format: Format,
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
        format: Format,
    ) -> Self {
        JsonLinesSink {
            resume: archive.resume_offset(&options.topic, partition).await,
            archive: Arc::clone(archive),
            format,
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

    /// Adds the message at `offset`: a reading to the file of its station and
    /// day, anything else to the dead letters (the reason is returned).
    pub(crate) fn add(
        &mut self,
        scratch: &mut Report,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: i64,
    ) -> Result<(), String> {
        let added = match self.format {
            Format::Json => {
                JsonReading::parse(value).map(|reading| self.lines.add_reading(&reading))
            }
            Format::Report => crate::partition::decode(scratch, value)
                .map(|()| self.lines.add(scratch, self.partition, offset)),
        };
        if let Err(reason) = &added {
            let letter = DeadLetter::new(&self.topic, self.partition, offset, key, value, reason);
            self.lines.add_dead_letter(&letter);
        }
        added
    }

    /// What a skipped message is, and where it went, for warnings.
    pub(crate) fn skip_note(&self) -> String {
        format!(
            "skipping a message that is not {}; kept whole in {}",
            self.format.describe(),
            self.archive
                .dir()
                .join(crate::jsonl::DEAD_LETTERS)
                .display()
        )
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
