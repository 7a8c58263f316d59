//! Helpers shared by the consumer's integration tests: a fresh topic filled
//! with course readings, the consumer binary as a child process, and the
//! topic's own content to compare the committed output with.
#![allow(dead_code)]

pub mod archive;
pub mod json;
pub mod stats;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use batch_store::{read_committed, CheckpointDir, Record, Store};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use report::{partition_for_key, Report};
use topic::{KafkaSettings, TopicSpec};
use weather_generator::WeatherGenerator;

pub fn unique(prefix: &str) -> String {
    local_stack::unique_name(prefix)
}

pub fn settings() -> KafkaSettings {
    KafkaSettings::new(local_stack::brokers())
}

pub async fn create_topic(name: &str, partitions: i32) {
    let spec = TopicSpec {
        name: name.into(),
        partitions,
        replication: 1,
        settle: Duration::from_secs(3),
    };
    topic::reset_topic(&settings(), &spec)
        .await
        .expect("create topic");
}

/// The first `count` readings of the course sequence, as Reports.
pub fn readings(skip: usize, count: usize) -> Vec<Report> {
    WeatherGenerator::new()
        .skip(skip)
        .take(count)
        .map(|r| Report {
            date: r.date.to_string(),
            degrees: r.degrees,
            station_id: r.station_id.into(),
        })
        .collect()
}

/// Sends raw values keyed by station into the partitions the producer would use.
pub async fn send_raw(topic: &str, partitions: i32, messages: &[(String, Vec<u8>)]) {
    let producer: FutureProducer = settings().producer_config().create().expect("producer");
    let deliveries: Vec<_> = messages
        .iter()
        .map(|(key, value)| {
            let record = FutureRecord::to(topic)
                .partition(partition_for_key(key.as_bytes(), partitions))
                .key(key.as_bytes())
                .payload(value);
            producer.send_result(record).expect("queue")
        })
        .collect();
    for delivery in deliveries {
        delivery.await.expect("not cancelled").expect("delivered");
    }
}

pub async fn send(topic: &str, partitions: i32, reports: &[Report]) {
    let messages: Vec<(String, Vec<u8>)> = reports
        .iter()
        .map(|r| (r.station_id.clone(), r.to_bytes()))
        .collect();
    send_raw(topic, partitions, &messages).await;
}

/// Starts the producer on a fresh 4-partition `topic` with `rows` rows of the
/// course generator, `delay` apart; the handle ends once all are delivered.
pub async fn produce(topic: &str, rows: u64, delay: Duration) -> tokio::task::JoinHandle<()> {
    produce_on(settings(), 1, topic, rows, delay).await
}

/// The same on the brokers of `settings`, with `replication` replicas.
pub async fn produce_on(
    settings: KafkaSettings,
    replication: i32,
    topic: &str,
    rows: u64,
    delay: Duration,
) -> tokio::task::JoinHandle<()> {
    let options = producer::ProducerOptions::recreating(TopicSpec {
        replication,
        ..TopicSpec::course(topic)
    });
    tokio::spawn(async move {
        let source = producer::Source::Generator {
            delay,
            rows: Some(rows),
        };
        let summary = producer::run(
            &settings,
            &options,
            source,
            &tokio_util::sync::CancellationToken::new(),
        )
        .await
        .expect("produce");
        assert_eq!(summary.delivered, rows);
    })
}

/// A record as a key for counting duplicates and losses (`local_stack::Tally`).
pub fn key(record: &Record) -> (String, String, u64) {
    (
        record.station_id.clone(),
        record.date.clone(),
        record.degrees.to_bits(),
    )
}

/// Every valid Report in the partition, in offset order, read straight from
/// the broker (to its end, not to its reported high watermark: see `topic::scan`).
pub fn topic_records(topic: &str, partition: i32) -> Vec<Record> {
    topic_records_on(&settings(), topic, partition)
}

/// The same on the brokers of `settings`.
pub fn topic_records_on(settings: &KafkaSettings, topic: &str, partition: i32) -> Vec<Record> {
    let mut records = Vec::new();
    topic::scan(
        settings,
        topic,
        partition,
        0,
        Duration::from_secs(3),
        |message| {
            if let Ok(report) = Report::from_bytes(message.payload().unwrap_or_default()) {
                if !report.station_id.is_empty() {
                    records.push(Record {
                        station_id: report.station_id,
                        date: report.date,
                        degrees: report.degrees,
                    });
                }
            }
            true
        },
    )
    .expect("read the partition");
    records
}

/// Where a consumer under test writes.
pub struct Output {
    pub store_location: String,
    pub checkpoint_dir: PathBuf,
    /// Set: the checkpoints are there (on HDFS), not in `checkpoint_dir`.
    pub checkpoint_location: Option<String>,
    _temp: tempfile::TempDir,
}

impl Output {
    /// A fresh HDFS base directory (or a local one) and a fresh checkpoint directory.
    pub fn new(on_hdfs: bool) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let store_location = if on_hdfs {
            format!("{}/{}", local_stack::hdfs_url(), unique("consumer-test"))
        } else {
            temp.path().join("store").display().to_string()
        };
        Self {
            store_location,
            checkpoint_dir: temp.path().join("checkpoints"),
            checkpoint_location: None,
            _temp: temp,
        }
    }

    /// Batches on HDFS, and the checkpoints on HDFS too (`<store>/checkpoints`).
    pub fn with_hdfs_checkpoints() -> Self {
        let mut output = Self::new(true);
        output.checkpoint_location = Some(format!("{}/checkpoints", output.store_location));
        output
    }

    /// What `--checkpoint-dir` is given.
    pub fn checkpoint_arg(&self) -> std::ffi::OsString {
        match &self.checkpoint_location {
            Some(location) => location.into(),
            None => self.checkpoint_dir.clone().into(),
        }
    }

    /// Where consumers started by a test log to (read it when a test fails).
    pub fn log_file(&self) -> std::fs::File {
        local_stack::append_log(&self.checkpoint_dir.with_file_name("consumers.log"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.checkpoint_dir.with_file_name("consumers.log"))
            .unwrap_or_default()
    }

    /// The last `lines` lines of the consumers' log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn store(&self) -> Store {
        Store::open(&self.store_location).unwrap()
    }

    pub fn checkpoints(&self) -> CheckpointDir {
        match &self.checkpoint_location {
            Some(location) => CheckpointDir::open(location).unwrap(),
            None => CheckpointDir::new(&self.checkpoint_dir),
        }
    }

    pub async fn committed(&self, partition: i32) -> Vec<Record> {
        read_committed(&self.store(), &self.checkpoints(), partition)
            .await
            .expect("read committed batches")
    }

    pub async fn committed_offset(&self, partition: i32) -> i64 {
        self.checkpoints()
            .load(partition)
            .await
            .ok()
            .flatten()
            .map_or(0, |cp| cp.offset)
    }

    /// Waits until the partition's checkpoint says exactly `offset`.
    pub async fn wait_for_offset(&self, partition: i32, offset: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let reached = self.committed_offset(partition).await;
            if reached == offset {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "partition {partition} reached offset {reached}, not {offset}, in {timeout:?}; \
                 the consumers' log ends:\n{}",
                self.log_tail(80)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The consumer binary, run as a child process against the local stack.
pub fn consumer_command(topic: &str, output: &Output, partitions: &[i32]) -> Command {
    let mut command = bare_consumer_command(topic, output, partitions);
    command
        .arg("--store")
        .arg(&output.store_location)
        .arg("--checkpoint-dir")
        .arg(output.checkpoint_arg());
    command
}

/// The consumer binary without a store or checkpoint directory chosen.
pub fn bare_consumer_command(topic: &str, output: &Output, partitions: &[i32]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_consumer"));
    command
        .args(partitions.iter().map(ToString::to_string))
        .arg("--topic")
        .arg(topic)
        .arg("--wait")
        .arg("30")
        .env("P7_BROKERS", local_stack::brokers())
        .env_remove("PROJECT")
        .env_remove("P7_STORE")
        .env_remove("P7_CHECKPOINT_DIR")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(output.log_file());
    command
}

// Not every test binary runs a program to its end.
#[allow(unused_imports)]
pub use local_stack::run_to_exit;

/// Sends SIGTERM and waits for the exit; panics (with the consumers' log) unless it is clean.
pub fn terminate(child: &mut Child, output: &Output) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("consumer ignored SIGTERM for 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "consumer exited with {status} after SIGTERM; log:\n{}",
        output.log()
    );
}

/// A small deterministic random source (xorshift), seeded per run and printed,
/// so a failing chaos run can be replayed.
pub struct Chaos(u64);

impl Chaos {
    pub fn new() -> Self {
        let seed = std::env::var("P7_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("chaos seed: {seed} (replay with P7_CHAOS_SEED={seed})");
        Self(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Consumer processes that are killed when the test ends, passing or not.
pub struct Running(pub Vec<Child>);

impl Running {
    /// `rounds` times: waits `pause` plus up to `spread` more, SIGKILLs one
    /// of the processes (picked at random when there are several; the seed is
    /// printed, see [`Chaos`]) and starts it again with `start(index)`.
    pub async fn kill_and_restart(
        &mut self,
        rounds: u32,
        pause: Duration,
        spread: Duration,
        start: impl Fn(usize) -> Child,
    ) {
        let mut rng = Chaos::new();
        for _ in 0..rounds {
            let wait = pause + Duration::from_millis(rng.below(spread.as_millis() as u64));
            tokio::time::sleep(wait).await;
            let victim = if self.0.len() > 1 {
                rng.below(self.0.len() as u64) as usize
            } else {
                0
            };
            self.0[victim].kill().expect("SIGKILL");
            self.0[victim].wait().expect("reap");
            self.0[victim] = start(victim);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `done` every 100 ms; panics after `timeout` with `log()` in the message.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen in {timeout:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh topic of one partition holding `count` course readings.
pub async fn one_partition_of(prefix: &str, count: usize) -> String {
    let topic = unique(prefix);
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, count)).await;
    topic
}

/// `consumer 0` with `args`, started and waited for until it has committed
/// `offset`.
pub async fn consuming_partition_0(
    topic: &str,
    output: &Output,
    args: &[&str],
    offset: i64,
) -> Running {
    let mut command = consumer_command(topic, output, &[0]);
    command.args(args);
    let child = Running(vec![command.spawn().expect("start consumer")]);
    output
        .wait_for_offset(0, offset, Duration::from_secs(60))
        .await;
    child
}

/// The course form under way on HDFS: the producer streaming `rows` rows into
/// a fresh 4-partition `topic`, and `consumer 0` … `consumer 3` (default
/// flags) each with something committed already.
pub async fn course_form_under_way(
    topic: &str,
    rows: u64,
) -> (tokio::task::JoinHandle<()>, Output, Running) {
    let producing = produce(topic, rows, Duration::from_millis(2)).await;
    let output = Output::new(true);
    let ends_so_far = || -> i64 {
        topic::end_offsets(&settings(), topic, Duration::from_secs(2))
            .map_or(0, |ends| ends.iter().sum())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ends_so_far() == 0 {
        assert!(Instant::now() < deadline, "no record in {topic} after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let consumers = Running(
        (0..4)
            .map(|p| consumer_command(topic, &output, &[p]).spawn().unwrap())
            .collect(),
    );
    // Uploads are under way once every partition has committed something.
    let deadline = Instant::now() + Duration::from_secs(60);
    for p in 0..4 {
        while output.committed_offset(p).await == 0 {
            assert!(
                Instant::now() < deadline,
                "partition {p} committed nothing in 60 s:\n{}",
                output.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    (producing, output, consumers)
}

/// Waits until every partition of `topic` (holding `rows` records in all)
/// is committed to its end.
pub async fn wait_for_the_ends(topic: &str, rows: u64, output: &Output) {
    let ends: Vec<i64> = (0..4)
        .map(|p| topic_records(topic, p).len() as i64)
        .collect();
    assert_eq!(ends.iter().sum::<i64>(), rows as i64);
    for (p, end) in ends.iter().enumerate() {
        output
            .wait_for_offset(p as i32, *end, Duration::from_secs(180))
            .await;
    }
}

/// Stops the consumers cleanly and checks every partition's committed
/// output equals the topic, record for record.
pub async fn stop_and_compare(topic: &str, output: &Output, consumers: &mut Running) {
    for child in &mut consumers.0 {
        terminate(child, output);
    }
    for p in 0..4 {
        assert_eq!(
            output.committed(p).await,
            topic_records(topic, p),
            "partition {p}"
        );
    }
}

/// The worker process of the supervised program whose process id is
/// `supervisor` (its only child), once it has one.
pub fn worker_of(supervisor: u32) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{supervisor}/task/{supervisor}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// The state letter of `pid` in /proc (`T` when stopped, `Z` a zombie);
/// `None` once it is gone.
pub fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state …; comm may hold spaces, so look after the last ')'.
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// The worker of the supervised program `child` once it has stopped itself
/// (SIGSTOP, at a `P7_PAUSE_POINT`); panics after a minute.
pub async fn paused_worker(child: &Child) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(worker) = worker_of(child.id()).filter(|&w| state_of(w) == Some('T')) {
            return worker;
        }
        assert!(Instant::now() < deadline, "the program never paused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `kafka-consumer-groups --describe --group GROUP` on `brokers` (Kafka's own
/// tool, from the Apache Kafka jars), as printed.
pub fn describe_group(brokers: &str, group: &str) -> String {
    local_stack::stack_output(&[
        "kafka-tool",
        "kafka.admin.ConsumerGroupCommand",
        "--bootstrap-server",
        brokers,
        "--describe",
        "--group",
        group,
    ])
}
