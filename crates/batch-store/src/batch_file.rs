//! The batch file: its name, its place, and its Parquet layout.
//!
//! `partition-N-batch-M.parquet` under `/data`, with exactly the three columns
//! of the `Report` message (`station_id`, `date`, `degrees`), so pyarrow,
//! pandas and DuckDB read it like the course's files.

use std::sync::Arc;

use arrow::array::{Array, ArrayBuilder, Float64Array, Float64Builder, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::{Error, Result, TMP_SUFFIX};

/// Directory of the store that holds batch files.
pub const DATA_DIR: &str = "/data";

/// One reading as stored in a batch file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub station_id: String,
    pub date: String,
    pub degrees: f64,
}

/// Batch `batch` of partition `partition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchFile {
    pub partition: i32,
    pub batch: u64,
}

impl BatchFile {
    pub fn new(partition: i32, batch: u64) -> Self {
        Self { partition, batch }
    }

    pub fn name(&self) -> String {
        format!("partition-{}-batch-{}.parquet", self.partition, self.batch)
    }

    pub fn path(&self) -> String {
        crate::join(DATA_DIR, &self.name())
    }

    /// A temp file of its own for one attempt to write this batch,
    /// `partition-N-batch-M.parquet.<attempt>.tmp`, never used again by
    /// this or any other process. An HDFS call that timed out may still be
    /// carried out later: requests stuck in a connection whose link was cut
    /// reach the NameNode once it is mended, after the retry has gone on.
    /// With one temp name per batch, an earlier attempt's late `create`
    /// could empty the temp file between a later attempt's close and its
    /// rename, and a 0-byte file be committed (the cut-link test did that).
    /// With a name per attempt, a late call only touches its own file.
    pub fn unique_tmp_path(&self) -> String {
        format!("{}.{}{TMP_SUFFIX}", self.path(), attempt_tag())
    }

    /// Parses a final (not temporary) batch file name.
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("partition-")?.strip_suffix(".parquet")?;
        let (partition, batch) = rest.split_once("-batch-")?;
        let partition = partition.parse().ok().filter(|p: &i32| *p >= 0)?;
        Some(Self {
            partition,
            batch: batch.parse().ok()?,
        })
    }

    /// The batch a temp file name belongs to: `….parquet.<attempt>.tmp`, or
    /// `….parquet.tmp` as earlier versions named them.
    pub fn parse_tmp(name: &str) -> Option<Self> {
        let rest = name.strip_suffix(TMP_SUFFIX)?;
        Self::parse(rest).or_else(|| Self::parse(rest.rsplit_once('.')?.0))
    }

    /// Whether `name` is a temporary file left by a writer of `partition`.
    pub fn is_tmp_of(partition: i32, name: &str) -> bool {
        Self::parse_tmp(name).is_some_and(|file| file.partition == partition)
    }
}

/// Unique across processes (a random per-process part) and within one (a
/// counter).
fn attempt_tag() -> String {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .hash_one((std::process::id(), std::time::SystemTime::now()))
    });
    format!("{process:016x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("station_id", DataType::Utf8, false),
        Field::new("date", DataType::Utf8, false),
        Field::new("degrees", DataType::Float64, false),
    ]))
}

/// Rows collected before they are encoded into the file being built.
const CHUNK_ROWS: usize = 16_384;

/// Builds one batch file as records arrive: every few thousand rows are
/// encoded and compressed into the Parquet file in memory, so a large batch
/// costs about its compressed size, not its raw values.
pub struct BatchBuilder {
    stations: StringBuilder,
    dates: StringBuilder,
    degrees: Float64Builder,
    writer: Option<ArrowWriter<Vec<u8>>>,
    rows: usize,
    /// The first encoding failure, reported by `finish`.
    failed: Option<String>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self {
            stations: StringBuilder::new(),
            dates: StringBuilder::new(),
            degrees: Float64Builder::new(),
            writer: None,
            rows: 0,
            failed: None,
        }
    }
}

impl BatchBuilder {
    pub fn push(&mut self, station_id: &str, date: &str, degrees: f64) {
        self.stations.append_value(station_id);
        self.dates.append_value(date);
        self.degrees.append_value(degrees);
        self.rows += 1;
        if self.degrees.len() >= CHUNK_ROWS {
            if let Err(reason) = self.encode_chunk() {
                self.failed.get_or_insert(reason);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Encodes the rows collected so far into the file.
    fn encode_chunk(&mut self) -> std::result::Result<(), String> {
        let schema = schema();
        let chunk = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(self.stations.finish()),
                Arc::new(self.dates.finish()),
                Arc::new(self.degrees.finish()),
            ],
        )
        .map_err(|err| err.to_string())?;
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                self.writer.insert(
                    ArrowWriter::try_new(Vec::new(), schema, Some(properties))
                        .map_err(|err| err.to_string())?,
                )
            }
        };
        writer.write(&chunk).map_err(|err| err.to_string())
    }

    /// One Snappy-compressed Parquet file (zero records give a valid file
    /// with no rows); the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<Bytes> {
        let fail = |cause: crate::Cause| Error::Parquet {
            path: "(new batch)".into(),
            cause,
        };
        let encoded = self.encode_chunk();
        let failed = self.failed.take();
        let writer = self.writer.take();
        self.rows = 0;
        if let Some(reason) = failed {
            return Err(fail(reason.into()));
        }
        encoded.map_err(|reason| fail(reason.into()))?;
        let writer = writer.expect("encode_chunk made the writer");
        let buffer = writer.into_inner().map_err(|err| fail(err.into()))?;
        Ok(Bytes::from(buffer))
    }
}

/// Encodes records as one batch file (see [`BatchBuilder::finish`]).
pub fn encode(records: &[Record]) -> Result<Bytes> {
    let mut builder = BatchBuilder::default();
    for record in records {
        builder.push(&record.station_id, &record.date, record.degrees);
    }
    builder.finish()
}

/// Decodes a batch file written by [`encode`] (or any Parquet file with the
/// same three columns).
pub fn decode(path: &str, bytes: Bytes) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for_each_record(path, bytes, |station_id, date, degrees| {
        records.push(Record {
            station_id: station_id.to_string(),
            date: date.to_string(),
            degrees,
        })
    })?;
    Ok(records)
}

/// Calls `visit(station_id, date, degrees)` for every row of a batch file, in
/// order, without building a [`Record`] per row; returns the number of rows.
/// A file with nulls or without the three columns is an error (the rows
/// visited before it was found are not undone: check the result first).
pub fn for_each_record(
    path: &str,
    bytes: Bytes,
    mut visit: impl FnMut(&str, &str, f64),
) -> Result<usize> {
    let fail = |cause: crate::Cause| Error::Parquet {
        path: path.into(),
        cause,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|builder| builder.build())
        .map_err(|err| fail(err.into()))?;
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|err| fail(err.into()))?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| fail(format!("no column {name}").into()))
        };
        let stations = column("station_id")?;
        let dates = column("date")?;
        let degrees = column("degrees")?;
        let stations = stations
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| fail("station_id is not a string".into()))?;
        let dates = dates
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| fail("date is not a string".into()))?;
        let degrees = degrees
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| fail("degrees is not a double".into()))?;
        if stations.null_count() + dates.null_count() + degrees.null_count() > 0 {
            return Err(fail("null values".into()));
        }
        for row in 0..batch.num_rows() {
            visit(stations.value(row), dates.value(row), degrees.value(row));
        }
        rows += batch.num_rows();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_course() {
        let file = BatchFile::new(2, 17);
        assert_eq!(file.path(), "/data/partition-2-batch-17.parquet");
        let (first, second) = (file.unique_tmp_path(), file.unique_tmp_path());
        assert_ne!(first, second, "every attempt has a temp file of its own");
        for tmp in [&first, &second] {
            let name = tmp.strip_prefix("/data/").unwrap();
            assert!(name.starts_with("partition-2-batch-17.parquet.") && name.ends_with(".tmp"));
            assert_eq!(BatchFile::parse_tmp(name), Some(file));
            assert!(BatchFile::is_tmp_of(2, name));
            assert!(!BatchFile::is_tmp_of(1, name));
        }
        assert_eq!(BatchFile::parse(&file.name()), Some(file));
        assert_eq!(BatchFile::parse("partition-2-batch-17.parquet.tmp"), None);
        assert_eq!(BatchFile::parse("partition-x-batch-1.parquet"), None);
        assert!(BatchFile::is_tmp_of(2, "partition-2-batch-17.parquet.tmp"));
        assert!(!BatchFile::is_tmp_of(1, "partition-2-batch-17.parquet.tmp"));
        assert!(!BatchFile::is_tmp_of(2, "partition-2-batch-17.parquet"));
    }

    #[test]
    fn records_round_trip_through_parquet() {
        let records = vec![
            Record {
                station_id: "StationA".into(),
                date: "2000-01-01".into(),
                degrees: 23.851454295532143,
            },
            Record {
                station_id: "StationJ".into(),
                date: "2000-01-02".into(),
                degrees: 1.0,
            },
        ];
        let bytes = encode(&records).unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        assert_eq!(decode("x", bytes).unwrap(), records);
        assert!(decode("x", encode(&[]).unwrap()).unwrap().is_empty());
    }

    #[test]
    fn a_batch_larger_than_a_chunk_round_trips_and_the_builder_starts_afresh() {
        let records: Vec<Record> = (0..CHUNK_ROWS * 2 + 7)
            .map(|i| Record {
                station_id: format!("Station{}", (b'A' + (i % 10) as u8) as char),
                date: format!("2000-01-{:02}", i % 28 + 1),
                degrees: i as f64 * 0.25 - 100.0,
            })
            .collect();
        let mut builder = BatchBuilder::default();
        for record in &records {
            builder.push(&record.station_id, &record.date, record.degrees);
        }
        assert_eq!(builder.len(), records.len());
        let first = builder.finish().unwrap();
        assert_eq!(decode("first", first).unwrap(), records);
        assert!(builder.is_empty());
        builder.push("StationB", "2001-02-03", 1.5);
        let second = decode("second", builder.finish().unwrap()).unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].station_id, "StationB");
        assert!(decode("empty", builder.finish().unwrap())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_truncated_file_is_an_error() {
        let bytes = encode(&[Record {
            station_id: "S".into(),
            date: "d".into(),
            degrees: 1.0,
        }])
        .unwrap();
        assert!(decode("x", bytes.slice(..bytes.len() / 2)).is_err());
    }
}
