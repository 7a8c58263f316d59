//! Messages like the data collector's own feed: one JSON weather reading per
//! message (`station_id`, `station_name`, an RFC 3339 `timestamp`,
//! `temperature`, and fields of its own), a few that are not readings, and
//! what the archive must hold for each. Shared with the daily aggregator's
//! tests (`#[path]`), so it needs nothing of the consumer crate.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

/// One message of the fixture.
#[derive(Debug, Clone)]
pub struct Message {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// For a reading: its `seq` field, and the archive file and line it must become.
    pub reading: Option<Reading>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub seq: u64,
    /// Relative to the archive: `<day>/<station>_<day>.jsonl`.
    pub file: String,
    /// The line, without its newline.
    pub line: String,
    /// The UTC day.
    pub day: String,
}

/// (station_id, station_name as sent or None, the file name's station part).
const STATIONS: [(&str, Option<&str>, &str); 6] = [
    ("KMSN", Some("Madison"), "Madison"),
    ("KORD", Some("Chicago"), "Chicago"),
    ("KFLD", Some("Fond du Lac"), "Fond%20du%20Lac"),
    ("SBGR", Some("São Paulo"), "S%C3%A3o%20Paulo"),
    ("KXYZ", Some("../../etc/passwd"), "%2E.%2F..%2Fetc%2Fpasswd"),
    ("K123", None, "K123"),
];

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `count` readings from `first_seq` on, over about three days from
/// 2025-12-13, spread over `partitions` by station, with a message that is not
/// a reading after every `bad_every` readings (`0`: none).
pub fn fixture(first_seq: u64, count: u64, partitions: i32, bad_every: u64) -> Vec<Message> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ first_seq.wrapping_mul(31).wrapping_add(count));
    let start = chrono::DateTime::parse_from_rfc3339("2025-12-13T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut messages = Vec::new();
    let mut bad = 0u64;
    for seq in first_seq..first_seq + count {
        let station = (seq % STATIONS.len() as u64) as usize;
        let (id, name, file_station) = STATIONS[station];
        // Readings about every 4 minutes: 3,000 of them span a bit over 8 days.
        let instant = start + chrono::Duration::seconds(seq as i64 * 250);
        let day = instant.format("%Y-%m-%d").to_string();
        // Some stamps are written in Madison's local time: their UTC day is
        // the file's day, not the one the text starts with.
        let stamp = if seq % 5 == 0 {
            instant
                .with_timezone(&chrono::FixedOffset::west_opt(6 * 3600).unwrap())
                .to_rfc3339()
        } else {
            instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        };
        let temperature = match rng.below(40) {
            0 => "null".to_string(),
            1 => format!("{}.20", rng.below(60)),
            _ => format!("{:.1}", rng.below(1000) as f64 / 10.0 - 20.0),
        };
        let mut text = format!("{{\"station_id\": \"{id}\", ");
        if let Some(name) = name {
            text.push_str(&format!("\"station_name\": {}, ", json_string(name)));
        }
        text.push_str(&format!(
            "\"timestamp\": \"{stamp}\", \"temperature\": {temperature}"
        ));
        if rng.below(10) > 0 {
            text.push_str(&format!(", \"humidity\": {}", rng.below(101)));
        }
        text.push_str(&format!(
            ", \"wind_mph\": {}.{:02}, \"pressure_hpa\": {}e-1, \"conditions\": {}, \"seq\": {seq}}}",
            rng.below(40),
            rng.below(100),
            9_900 + rng.below(300),
            json_string(["Clear", "Light \"snow\"", "Fog\tpatches", "Überwiegend bewölkt"][rng.below(4) as usize]),
        ));
        // Every message of a station in one partition, as a keyed producer does.
        let partition = station as i32 % partitions;
        messages.push(Message {
            partition,
            key: Some(id.as_bytes().to_vec()),
            value: Some(text.clone().into_bytes()),
            reading: Some(Reading {
                seq,
                file: format!("{day}/{file_station}_{day}.jsonl"),
                line: text,
                day,
            }),
        });
        if bad_every > 0 && (seq + 1) % bad_every == 0 {
            messages.push(not_a_reading(bad, &mut rng, partitions));
            bad += 1;
        }
    }
    messages
}

/// The `n`-th kind of message that is not a reading.
fn not_a_reading(n: u64, rng: &mut Rng, partitions: i32) -> Message {
    let value: Option<Vec<u8>> = match n % 8 {
        0 => Some(b"\xff\xfe not UTF-8".to_vec()),
        1 => Some(b"{\"station_id\": \"KMSN\", \"timestamp\": ".to_vec()),
        2 => Some(b"[\"KMSN\", \"Madison\", \"2025-12-13T10:30:00Z\", 45.2]".to_vec()),
        3 => Some(b"{\"station_name\": \"Madison\", \"temperature\": 45.2}".to_vec()),
        4 => Some(b"{\"station_id\": \"KMSN\", \"timestamp\": \"13/12/2025 10:30\"}".to_vec()),
        5 => None,
        6 => Some(Vec::new()),
        _ => Some(b"{\"temperature\": 45.2, \"timestamp\": \"2025-12-13T10:30:00Z\"}".to_vec()),
    };
    Message {
        partition: rng.below(partitions as u64) as i32,
        key: (!n.is_multiple_of(3)).then(|| format!("bad-{n}").into_bytes()),
        value,
        reading: None,
    }
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Sends `messages` to their partitions of `topic`, each `delay` after the
/// one before; returns each message's offset in order.
pub async fn send(
    brokers: &str,
    topic: &str,
    messages: &[Message],
    delay: Duration,
) -> Vec<(i32, i64)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("a producer");
    let mut positions = Vec::with_capacity(messages.len());
    let mut pending = Vec::new();
    for message in messages {
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).partition(message.partition);
        if let Some(key) = &message.key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = &message.value {
            record = record.payload(value.as_slice());
        }
        pending.push(producer.send_result(record).expect("queued"));
        if !delay.is_zero() {
            for delivery in pending.drain(..) {
                let delivered = delivery.await.expect("not cancelled").expect("delivered");
                positions.push((delivered.partition, delivered.offset));
            }
            tokio::time::sleep(delay).await;
        }
    }
    for delivery in pending {
        let delivered = delivery.await.expect("not cancelled").expect("delivered");
        positions.push((delivered.partition, delivered.offset));
    }
    positions
}

/// What the archive in `dir` holds: each reading file's lines, and the dead letters' lines.
pub fn archive_files(dir: &Path) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut files = BTreeMap::new();
    for day in std::fs::read_dir(dir).unwrap() {
        let day = day.unwrap();
        let name = day.file_name().to_string_lossy().into_owned();
        if !day.file_type().unwrap().is_dir() || name == "checkpoints" {
            continue;
        }
        for file in std::fs::read_dir(day.path()).unwrap() {
            let file = file.unwrap();
            let relative = format!("{name}/{}", file.file_name().to_string_lossy());
            let text = std::fs::read_to_string(file.path()).unwrap();
            assert!(text.ends_with('\n'), "{relative} ends in a partial line");
            files.insert(relative, text.lines().map(str::to_string).collect());
        }
    }
    let dead = std::fs::read_to_string(dir.join("dead-letters.jsonl"))
        .map(|text| {
            assert!(
                text.ends_with('\n'),
                "the dead letters end in a partial line"
            );
            text.lines().map(str::to_string).collect()
        })
        .unwrap_or_default();
    (files, dead)
}

/// Asserts that the archive in `dir` holds every reading of `sent` exactly
/// once, as it was sent, in its file, and every other message exactly once
/// in the dead letters, whole; `positions` are where each message landed.
pub fn assert_archived_exactly_once(
    dir: &Path,
    topic: &str,
    sent: &[Message],
    positions: &[(i32, i64)],
) {
    use base64::Engine as _;
    let (files, dead) = archive_files(dir);
    let mut expected: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut expected_dead = BTreeMap::new();
    for (message, &(partition, offset)) in sent.iter().zip(positions) {
        assert_eq!(partition, message.partition);
        match &message.reading {
            Some(reading) => expected
                .entry(reading.file.clone())
                .or_default()
                .push(&reading.line),
            None => {
                let encode =
                    |bytes: &Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
                expected_dead.insert(
                    (partition, offset),
                    (
                        message.key.as_ref().map(encode),
                        message.value.as_ref().map(encode),
                    ),
                );
            }
        }
    }
    // Lines of one file come from one partition (one station), in its order.
    let got: BTreeMap<String, Vec<&str>> = files
        .iter()
        .map(|(file, lines)| (file.clone(), lines.iter().map(String::as_str).collect()))
        .collect();
    if got != expected {
        let count = |m: &BTreeMap<String, Vec<&str>>| m.values().map(Vec::len).sum::<usize>();
        let differing: Vec<&String> = expected
            .keys()
            .chain(got.keys())
            .filter(|f| got.get(*f) != expected.get(*f))
            .take(5)
            .collect();
        panic!(
            "the archive differs from the readings sent: {} lines in {} files, expected {} in {}; \
             differing files include {differing:?}",
            count(&got),
            got.len(),
            count(&expected),
            expected.len()
        );
    }
    let mut got_dead = BTreeMap::new();
    for line in &dead {
        let letter: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(letter["topic"], topic);
        assert!(!letter["reason"].as_str().unwrap().is_empty());
        let position = (
            letter["partition"].as_i64().unwrap() as i32,
            letter["offset"].as_i64().unwrap(),
        );
        let whole = (
            letter["key_base64"].as_str().map(str::to_string),
            letter["value_base64"].as_str().map(str::to_string),
        );
        assert!(
            got_dead.insert(position, whole).is_none(),
            "dead letter at {position:?} twice"
        );
    }
    assert_eq!(got_dead, expected_dead, "the dead letters");
}
