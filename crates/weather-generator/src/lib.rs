//! The weather source of the pipeline: the course's deterministic generator
//! and the MySQL table it fills (which the producer reads).

pub mod db;
pub mod generator;
mod python_random;

use std::time::Duration;

pub use db::Database;
pub use generator::{Reading, WeatherGenerator, STATIONS};
pub use python_random::PythonRandom;
use tokio_util::sync::CancellationToken;

/// The MySQL URL of the course stack: the database container is named
/// `${PROJECT}-mysql-1`.
pub fn course_mysql_url(project: Option<&str>) -> Result<String, String> {
    match project.map(str::trim) {
        Some(project) if !project.is_empty() => Ok(format!("mysql://root:abc@{project}-mysql-1:3306/CS544")),
        _ => Err("PROJECT is not set: it names the course containers (MySQL runs in ${PROJECT}-mysql-1); \
                  export PROJECT or pass --mysql-url / P7_MYSQL_URL"
            .to_string()),
    }
}

/// How many readings to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Forever,
    Rows(u64),
    Days(u64),
}

impl Limit {
    fn rows(self) -> Option<u64> {
        match self {
            Limit::Forever => None,
            Limit::Rows(rows) => Some(rows),
            Limit::Days(days) => Some(days * STATIONS.len() as u64),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GeneratorOptions {
    /// Pause after each row in course mode.
    pub delay: Duration,
    pub limit: Limit,
    /// Insert `bulk_rows` rows per statement with no pause.
    pub bulk: bool,
    pub bulk_rows: usize,
    /// Continue after the last row already in the table instead of starting at 2000-01-01.
    pub resume: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("cannot resume: the last row in temperatures ({station} on {date}) is not part of the course sequence")]
    UnknownLastRow {
        station: String,
        date: chrono::NaiveDate,
    },
}

/// Fills `temperatures` until the limit is reached or `shutdown` fires.
/// Returns the number of rows inserted.
pub async fn run(
    database: &Database,
    options: &GeneratorOptions,
    shutdown: &CancellationToken,
) -> Result<u64, Error> {
    database.create_table().await?;
    let start = if options.resume {
        resume_position(database).await?
    } else {
        0
    };
    if start > 0 {
        tracing::info!(
            position = start,
            "resuming the sequence after the rows already in the table"
        );
    }
    let mut generator = WeatherGenerator::starting_at(start);
    // `Limit` counts rows of this run, not of the whole sequence.
    let mut remaining = options.limit.rows();
    let mut inserted = 0u64;
    let batch_size = if options.bulk {
        options.bulk_rows.max(1)
    } else {
        1
    };
    let mut batch = Vec::with_capacity(batch_size);

    while !shutdown.is_cancelled() && remaining != Some(0) {
        let take = remaining.map_or(batch_size, |left| batch_size.min(left as usize));
        batch.clear();
        batch.extend(generator.by_ref().take(take));
        database.insert(&batch).await?;
        inserted += batch.len() as u64;
        if let Some(left) = remaining.as_mut() {
            *left -= batch.len() as u64;
        }
        if inserted % 100_000 < batch.len() as u64 {
            tracing::info!(inserted, "rows generated");
        }
        if !options.bulk && !options.delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(options.delay) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }
    tracing::info!(
        inserted,
        next_position = generator.position(),
        "generator stopped"
    );
    Ok(inserted)
}

async fn resume_position(database: &Database) -> Result<u64, Error> {
    let Some(last) = database.last_row().await? else {
        return Ok(0);
    };
    WeatherGenerator::position_of(&last.station_id, last.date)
        .map(|position| position + 1)
        .ok_or(Error::UnknownLastRow {
            station: last.station_id,
            date: last.date,
        })
}
