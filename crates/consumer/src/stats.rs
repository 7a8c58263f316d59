//! The stats sink's state (the f24 course variant): per partition, the next
//! offset and, per station, `count`, `sum`, `avg`, `start` and `end`, all in
//! one `partition-N.json` replaced atomically, so state and position can
//! never disagree and a restart continues exactly once.
//!
//! ```json
//! {"offset": 1234, "StationA": {"count": 308, "sum": 9345.2, "avg": 30.34, "start": "2000-01-01", "end": "2000-11-03"}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationStats {
    pub count: u64,
    pub sum: f64,
    pub avg: f64,
    /// Date of the first reading seen.
    pub start: String,
    /// Date of the last reading seen.
    pub end: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionStats {
    /// The next offset of the partition to read.
    pub offset: i64,
    pub stations: BTreeMap<String, StationStats>,
}

impl PartitionStats {
    pub fn add(&mut self, station_id: &str, date: &str, degrees: f64) {
        match self.stations.get_mut(station_id) {
            Some(stats) => {
                stats.count += 1;
                stats.sum += degrees;
                stats.avg = stats.sum / stats.count as f64;
                stats.end = date.to_string();
            }
            None => {
                let stats = StationStats {
                    count: 1,
                    sum: degrees,
                    avg: degrees,
                    start: date.to_string(),
                    end: date.to_string(),
                };
                self.stations.insert(station_id.to_string(), stats);
            }
        }
    }

    /// The stats of `partition` in `dir`; `None` if it has none yet, an
    /// error if its file is damaged.
    pub async fn load(
        dir: &batch_store::CheckpointDir,
        partition: i32,
    ) -> batch_store::Result<Option<Self>> {
        dir.store()
            .load_state(
                &batch_store::CheckpointDir::file_name(partition),
                Self::from_json,
            )
            .await
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut object = serde_json::Map::new();
        object.insert("offset".into(), self.offset.into());
        for (station, stats) in &self.stations {
            let value = serde_json::to_value(stats).expect("station stats always serialize");
            object.insert(station.clone(), value);
        }
        serde_json::to_vec_pretty(&serde_json::Value::Object(object))
            .expect("a JSON object always serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
        let serde_json::Value::Object(object) = value else {
            return Err("not a JSON object".into());
        };
        let mut stats = PartitionStats::default();
        let mut offset = None;
        for (key, value) in object {
            if key == "offset" {
                offset = Some(
                    value
                        .as_i64()
                        .filter(|o| *o >= 0)
                        .ok_or("offset is not a non-negative integer")?,
                );
            } else {
                let station: StationStats =
                    serde_json::from_value(value).map_err(|err| format!("station {key}: {err}"))?;
                stats.stations.insert(key, station);
            }
        }
        stats.offset = offset.ok_or("no offset")?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_stats_and_their_file_round_trip() {
        let mut stats = PartitionStats::default();
        stats.add("StationA", "2000-01-01", 10.0);
        stats.add("StationB", "2000-01-01", 1.0);
        stats.add("StationA", "2000-01-02", 20.0);
        stats.offset = 3;
        let a = &stats.stations["StationA"];
        assert_eq!(
            (a.count, a.sum, a.avg, a.start.as_str(), a.end.as_str()),
            (2, 30.0, 15.0, "2000-01-01", "2000-01-02")
        );
        let json: serde_json::Value = serde_json::from_slice(&stats.to_json()).unwrap();
        assert_eq!(json["offset"], 3);
        assert_eq!(json["StationB"]["avg"], 1.0);
        assert_eq!(PartitionStats::from_json(&stats.to_json()).unwrap(), stats);
    }

    #[test]
    fn a_damaged_file_is_an_error() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"StationA\": {}}",
            b"{\"offset\": -1}",
            b"{\"offset\": 1, \"StationA\": 3}",
        ] {
            assert!(
                PartitionStats::from_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
