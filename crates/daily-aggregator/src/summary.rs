//! One day's summaries: per station (an archive file), the readings, the
//! first and last timestamp, and count, min, max and mean of every numeric
//! field; written as JSON Lines and as Parquet with the same columns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};

/// Fields that name the reading rather than measure something.
const KEYS: [&str; 3] = ["station_id", "station_name", "timestamp"];

/// Whether `name` is a day directory of the archive, `YYYY-MM-DD`.
pub(crate) fn is_day(name: &str) -> bool {
    chrono::NaiveDate::parse_from_str(name, "%Y-%m-%d").is_ok() && name.len() == 10
}

/// Count, min, max and sum of one numeric field's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldStats {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    /// Kept with Neumaier's compensation, so the mean does not drift with
    /// the number of readings.
    sum: f64,
    compensation: f64,
}

impl FieldStats {
    fn new() -> Self {
        Self {
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            compensation: 0.0,
        }
    }

    fn add(&mut self, value: f64) {
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        let total = self.sum + value;
        self.compensation += if self.sum.abs() >= value.abs() {
            (self.sum - total) + value
        } else {
            (value - total) + self.sum
        };
        self.sum = total;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| (self.sum + self.compensation) / self.count as f64)
    }
}

/// One station's day.
#[derive(Debug, Clone, PartialEq)]
pub struct StationSummary {
    pub station_id: Option<String>,
    pub station_name: Option<String>,
    pub readings: u64,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub fields: BTreeMap<String, FieldStats>,
}

impl StationSummary {
    fn new() -> Self {
        Self {
            station_id: None,
            station_name: None,
            readings: 0,
            first: None,
            last: None,
            fields: BTreeMap::new(),
        }
    }

    /// Adds one archive line; the reason if it is not a JSON object.
    pub(crate) fn add(&mut self, line: &[u8]) -> Result<(), String> {
        let reading: Map<String, Value> =
            serde_json::from_slice(line).map_err(|err| format!("not a JSON object: {err}"))?;
        self.readings += 1;
        let text = |value: Option<&Value>| match value {
            Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            _ => None,
        };
        if self.station_id.is_none() {
            self.station_id = text(reading.get("station_id"));
        }
        if self.station_name.is_none() {
            self.station_name = text(reading.get("station_name"));
        }
        if let Some(Value::String(stamp)) = reading.get("timestamp") {
            if let Ok(at) = DateTime::parse_from_rfc3339(stamp) {
                let at = at.with_timezone(&Utc);
                self.first = Some(self.first.map_or(at, |first| first.min(at)));
                self.last = Some(self.last.map_or(at, |last| last.max(at)));
            }
        }
        for (name, value) in &reading {
            if KEYS.contains(&name.as_str()) {
                continue;
            }
            if let Some(number) = value.as_f64().filter(|_| value.is_number()) {
                self.fields
                    .entry(name.clone())
                    .or_insert_with(FieldStats::new)
                    .add(number);
            }
        }
        Ok(())
    }
}

/// A day's summaries, by archive file (one station each).
#[derive(Debug, Clone, PartialEq)]
pub struct DaySummary {
    pub day: String,
    pub stations: BTreeMap<String, StationSummary>,
}

impl DaySummary {
    pub(crate) fn new(day: &str) -> Self {
        Self {
            day: day.to_string(),
            stations: BTreeMap::new(),
        }
    }

    pub(crate) fn station(&mut self, file: &str) -> &mut StationSummary {
        self.stations
            .entry(file.to_string())
            .or_insert_with(StationSummary::new)
    }

    pub fn readings(&self) -> u64 {
        self.stations.values().map(|s| s.readings).sum()
    }

    /// Every numeric field of the day, in name order: the columns every
    /// station's summary has (null where it has no value of it).
    fn fields(&self) -> BTreeSet<&str> {
        self.stations
            .values()
            .flat_map(|s| s.fields.keys().map(String::as_str))
            .collect()
    }

    /// A line per station: `date`, `station_id`, `station_name`, `readings`,
    /// `first_timestamp`, `last_timestamp`, then `<field>_count`, `_min`,
    /// `_max` and `_mean` for every numeric field of the day, in that order.
    pub fn to_json_lines(&self) -> Vec<u8> {
        let fields = self.fields();
        let mut out = Vec::new();
        for station in self.stations.values() {
            let mut pairs: Vec<(String, Value)> = vec![
                ("date".into(), Value::from(self.day.as_str())),
                ("station_id".into(), station.station_id.clone().into()),
                ("station_name".into(), station.station_name.clone().into()),
                ("readings".into(), station.readings.into()),
                ("first_timestamp".into(), stamp(station.first).into()),
                ("last_timestamp".into(), stamp(station.last).into()),
            ];
            for field in &fields {
                let stats = station.fields.get(*field);
                let value = |pick: fn(&FieldStats) -> Option<f64>| -> Value {
                    stats.and_then(pick).map_or(Value::Null, Value::from)
                };
                pairs.push((
                    format!("{field}_count"),
                    stats.map_or(0, |s| s.count).into(),
                ));
                pairs.push((format!("{field}_min"), value(|s| Some(s.min))));
                pairs.push((format!("{field}_max"), value(|s| Some(s.max))));
                pairs.push((format!("{field}_mean"), value(FieldStats::mean)));
            }
            // Written pair by pair: a serde_json map would sort the keys.
            out.push(b'{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, key).expect("a key serializes");
                out.push(b':');
                serde_json::to_writer(&mut out, value).expect("a value serializes");
            }
            out.extend_from_slice(b"}\n");
        }
        out
    }

    /// The same columns as `to_json_lines`, a row per station; the
    /// timestamps as UTC timestamps (microseconds).
    pub fn to_parquet(&self) -> Result<Bytes, parquet::errors::ParquetError> {
        let fields = self.fields();
        let stations: Vec<&StationSummary> = self.stations.values().collect();
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let time = |name: &str| {
            Field::new(
                name,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            )
        };
        let mut schema = vec![
            text("date", false),
            text("station_id", true),
            text("station_name", true),
            Field::new("readings", DataType::Int64, false),
            time("first_timestamp"),
            time("last_timestamp"),
        ];
        let micros = |at: Option<DateTime<Utc>>| at.map(|at| at.timestamp_micros());
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![self.day.as_str(); stations.len()])),
            Arc::new(StringArray::from(
                stations
                    .iter()
                    .map(|s| s.station_id.clone())
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                stations
                    .iter()
                    .map(|s| s.station_name.clone())
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                stations
                    .iter()
                    .map(|s| s.readings as i64)
                    .collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(
                    stations.iter().map(|s| micros(s.first)).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from(
                    stations.iter().map(|s| micros(s.last)).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ];
        for field in &fields {
            let stats: Vec<Option<&FieldStats>> =
                stations.iter().map(|s| s.fields.get(*field)).collect();
            schema.push(Field::new(format!("{field}_count"), DataType::Int64, false));
            columns.push(Arc::new(Int64Array::from(
                stats
                    .iter()
                    .map(|s| s.map_or(0, |s| s.count as i64))
                    .collect::<Vec<_>>(),
            )));
            let floats = |pick: fn(&FieldStats) -> Option<f64>| -> ArrayRef {
                Arc::new(Float64Array::from(
                    stats.iter().map(|s| s.and_then(pick)).collect::<Vec<_>>(),
                ))
            };
            for (suffix, pick) in [
                (
                    "min",
                    (|s: &FieldStats| Some(s.min)) as fn(&FieldStats) -> Option<f64>,
                ),
                ("max", |s: &FieldStats| Some(s.max)),
                ("mean", FieldStats::mean),
            ] {
                schema.push(Field::new(
                    format!("{field}_{suffix}"),
                    DataType::Float64,
                    true,
                ));
                columns.push(floats(pick));
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(schema)), columns)?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties))?;
        writer.write(&batch)?;
        writer.close()?;
        Ok(Bytes::from(bytes))
    }
}

fn stamp(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_station_day_has_the_stats_of_every_numeric_field() {
        let mut day = DaySummary::new("2025-12-13");
        let station = day.station("2025-12-13/Madison_2025-12-13.jsonl");
        for line in [
            r#"{"station_id":"KMSN","station_name":"Madison","timestamp":"2025-12-13T10:30:00Z","temperature":45.2,"humidity":80,"conditions":"Fog"}"#,
            r#"{"station_id":"KMSN","station_name":"Madison","timestamp":"2025-12-13T04:00:00-06:00","temperature":null,"humidity":60}"#,
            r#"{"station_id":"KMSN","station_name":"Madison","timestamp":"2025-12-13T08:05:00.25Z","temperature":44.8,"flag":true}"#,
        ] {
            station.add(line.as_bytes()).unwrap();
        }
        assert!(station.add(b"[1, 2]").is_err());
        let lines = String::from_utf8(day.to_json_lines()).unwrap();
        assert_eq!(
            lines,
            "{\"date\":\"2025-12-13\",\"station_id\":\"KMSN\",\"station_name\":\"Madison\",\"readings\":3,\
             \"first_timestamp\":\"2025-12-13T08:05:00.250Z\",\"last_timestamp\":\"2025-12-13T10:30:00Z\",\
             \"humidity_count\":2,\"humidity_min\":60.0,\"humidity_max\":80.0,\"humidity_mean\":70.0,\
             \"temperature_count\":2,\"temperature_min\":44.8,\"temperature_max\":45.2,\"temperature_mean\":45.0}\n"
        );
        let parquet = day.to_parquet().unwrap();
        assert_eq!(&parquet[..4], b"PAR1");
    }

    #[test]
    fn the_mean_of_many_readings_does_not_drift() {
        let mut stats = FieldStats::new();
        for _ in 0..1_000_000 {
            stats.add(0.1);
        }
        assert_eq!(stats.mean(), Some(0.1));
    }

    #[test]
    fn only_dates_are_days() {
        assert!(is_day("2025-12-13"));
        assert!(!is_day("2025-13-01"));
        assert!(!is_day("checkpoints"));
        assert!(!is_day("2025-1-1"));
    }
}
