//! The `temperatures` table in MySQL: connecting (and waiting for the server),
//! creating the table, inserting generated rows and reading them back.

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{QueryBuilder, Row};

use crate::generator::Reading;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid MySQL URL {url:?}: {source}")]
    Url { url: String, source: sqlx::Error },
    #[error("MySQL at {target} refused the login: {message}")]
    Login { target: String, message: String },
    #[error("MySQL at {target} did not become reachable within {waited:?}: {source}")]
    Unreachable {
        target: String,
        waited: Duration,
        source: sqlx::Error,
    },
    #[error("MySQL at {target}: {context}: {source}")]
    Query {
        target: String,
        context: &'static str,
        source: sqlx::Error,
    },
}

/// The table of the course, created if missing.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS temperatures (\
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
    station_id TEXT, \
    date DATE, \
    degrees DOUBLE)";

/// One row of `temperatures`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub id: i64,
    pub station_id: String,
    pub date: NaiveDate,
    pub degrees: f64,
}

/// A connection pool to the database holding `temperatures`.
#[derive(Clone)]
pub struct Database {
    pool: MySqlPool,
    target: String,
}

impl Database {
    /// Connects, retrying while the server is unreachable (it may still be
    /// starting) for up to `wait`; a refused login or unknown database fails at once.
    pub async fn connect(url: &str, wait: Duration) -> Result<Self> {
        let options = MySqlConnectOptions::from_str(url).map_err(|source| Error::Url {
            url: redact(url),
            source,
        })?;
        let target = redact(url);
        let started = Instant::now();
        let mut logged = false;
        loop {
            let attempt = MySqlPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await;
            match attempt {
                Ok(pool) => {
                    if logged {
                        tracing::info!(%target, "MySQL is reachable");
                    }
                    return Ok(Self { pool, target });
                }
                Err(sqlx::Error::Database(db)) => {
                    return Err(Error::Login {
                        target,
                        message: db.message().to_string(),
                    });
                }
                Err(source) if started.elapsed() >= wait => {
                    return Err(Error::Unreachable {
                        target,
                        waited: wait,
                        source,
                    });
                }
                Err(source) => {
                    if !logged {
                        tracing::warn!(%target, error = %source, "MySQL is not reachable yet; retrying");
                        logged = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    fn query_error(&self, context: &'static str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
        move |source| Error::Query {
            target: self.target.clone(),
            context,
            source,
        }
    }

    pub async fn create_table(&self) -> Result<()> {
        sqlx::query(CREATE_TABLE)
            .execute(&self.pool)
            .await
            .map_err(self.query_error("creating the table"))?;
        Ok(())
    }

    /// Inserts `readings` in order with one multi-row statement (one commit).
    pub async fn insert(&self, readings: &[Reading]) -> Result<()> {
        if readings.is_empty() {
            return Ok(());
        }
        let mut insert = QueryBuilder::new("INSERT INTO temperatures (station_id, date, degrees) ");
        insert.push_values(readings, |mut row, reading| {
            row.push_bind(reading.station_id)
                .push_bind(reading.date)
                .push_bind(reading.degrees);
        });
        insert
            .build()
            .execute(&self.pool)
            .await
            .map_err(self.query_error("inserting rows"))?;
        Ok(())
    }

    /// The newest row, by id.
    pub async fn last_row(&self) -> Result<Option<StoredRow>> {
        let row = sqlx::query(
            "SELECT id, station_id, date, degrees FROM temperatures ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query_error("reading the last row"))?;
        row.map(|row| decode_row(&row))
            .transpose()
            .map_err(self.query_error("decoding the last row"))
    }

    /// Up to `limit` rows with `id > after`, in id order, read in a
    /// transaction of their own: under REPEATABLE READ a reader that kept one
    /// transaction open would never see rows committed after it began.
    pub async fn rows_after(&self, after: i64, limit: u32) -> Result<Vec<StoredRow>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(self.query_error("starting a transaction"))?;
        let rows = sqlx::query(
            "SELECT id, station_id, date, degrees FROM temperatures WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(self.query_error("reading new rows"))?;
        tx.commit()
            .await
            .map_err(self.query_error("ending the read transaction"))?;
        rows.iter()
            .map(decode_row)
            .collect::<Result<_, _>>()
            .map_err(self.query_error("decoding rows"))
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }
}

fn decode_row(row: &sqlx::mysql::MySqlRow) -> Result<StoredRow, sqlx::Error> {
    Ok(StoredRow {
        id: i64::from(row.try_get::<i32, _>("id")?),
        station_id: row
            .try_get::<Option<String>, _>("station_id")?
            .unwrap_or_default(),
        date: row
            .try_get::<Option<NaiveDate>, _>("date")?
            .unwrap_or_default(),
        degrees: row
            .try_get::<Option<f64>, _>("degrees")?
            .unwrap_or(f64::NAN),
    })
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("mysql://root:abc@mysql:3306/CS544"),
            "mysql://root@mysql:3306/CS544"
        );
        assert_eq!(
            redact("mysql://mysql:3306/CS544"),
            "mysql://mysql:3306/CS544"
        );
    }
}
