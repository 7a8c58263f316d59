//! The course-style checks, in the order the course's autograder runs them.
//! Each passes, fails (with what was wrong) or could not run (with why).

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use batch_store::batch_file::BatchFile;
use batch_store::{read_batch, read_committed, CheckpointDir, Record, Store};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use report::{COURSE_PARTITIONS, TOPIC};
use serde::Serialize;
use sqlx::Connection;
use topic::{ClientLog, KafkaSettings};

use crate::setup::Setup;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    NotRun,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub number: usize,
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Scorecard {
    pub score: usize,
    pub max_score: usize,
    pub checks: Vec<Outcome>,
}

impl Scorecard {
    fn add(&mut self, name: &'static str, result: Result<String, Problem>) -> bool {
        let (status, detail) = match result {
            Ok(detail) => (Status::Pass, detail),
            Err(Problem::Failed(detail)) => (Status::Fail, detail),
            Err(Problem::NotRun(detail)) => (Status::NotRun, detail),
        };
        let number = self.checks.len() + 1;
        let line = match status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::NotRun => "NOT RUN",
        };
        println!("{line:7} {number}. {name}: {detail}");
        self.max_score += 1;
        if status == Status::Pass {
            self.score += 1;
        }
        self.checks.push(Outcome {
            number,
            name,
            status,
            detail,
        });
        status == Status::Pass
    }

    /// The checks not yet run when the grader was stopped, as not run.
    pub fn interrupted(&mut self) {
        for name in &NAMES[self.checks.len()..] {
            self.add(name, Err(NotRun("the grader was stopped".into())));
        }
    }

    pub fn print(&self) {
        println!("score: {}/{}", self.score, self.max_score);
    }

    pub fn full_score(&self) -> bool {
        self.max_score > 0 && self.score == self.max_score
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).expect("a report always serializes");
        std::fs::write(path, text + "\n")
    }
}

enum Problem {
    Failed(String),
    NotRun(String),
}

use Problem::{Failed, NotRun};

const NAMES: [&str; 6] = [
    "topic temperatures with 4 partitions within 60 s of starting the producer",
    "a reader with no group gets StationA-J from the earliest offset, each in its partition",
    "debug prints a line that parses as the graders parse it",
    "consumer 0..3 commit checkpoints and Parquet batches 0..=batch_id",
    "a SIGKILLed consumer resumes with every record exactly once",
    "stats variant: count == (end - start).days + 1 for every station",
];

pub async fn run_all(setup: &Setup, report: &mut Scorecard) {
    let producing = report.add(NAMES[0], start_and_find_topic(setup).await);
    let needs = |ok: bool| -> Result<(), Problem> {
        if ok {
            Ok(())
        } else {
            Err(NotRun(
                "needs check 1 (a producer filling the topic)".into(),
            ))
        }
    };
    let result = match needs(producing) {
        Ok(()) => read_without_group(setup).await,
        Err(problem) => Err(problem),
    };
    report.add(NAMES[1], result);
    let result = match needs(producing) {
        Ok(()) => debug_line(setup).await,
        Err(problem) => Err(problem),
    };
    report.add(NAMES[2], result);
    let result = match needs(producing) {
        Ok(()) => consumers_commit(setup).await,
        Err(problem) => Err(problem),
    };
    let consuming = report.add(NAMES[3], result);
    let result = match (producing, consuming) {
        (true, true) => crash_recovery(setup).await,
        (false, _) => Err(NotRun(
            "needs check 1 (a producer filling the topic)".into(),
        )),
        (true, false) => Err(NotRun("needs check 4 (consumers running)".into())),
    };
    report.add(NAMES[4], result);
    let result = match needs(producing) {
        Ok(()) => stats_variant(setup).await,
        Err(problem) => Err(problem),
    };
    report.add(NAMES[5], result);
}

fn settings(setup: &Setup) -> KafkaSettings {
    KafkaSettings::new(&setup.brokers)
}

/// Partitions of the topic the broker reports (0 if it has none).
fn partition_count(consumer: &BaseConsumer<ClientLog>) -> Result<usize, String> {
    topic::partition_count(consumer, TOPIC, Duration::from_secs(5)).map_err(|err| err.to_string())
}

async fn start_and_find_topic(setup: &Setup) -> Result<String, Problem> {
    for program in ["weather-generator", "producer", "debug", "consumer"] {
        setup.program(program).map_err(NotRun)?;
    }

    let settings = settings(setup);
    let consumer: BaseConsumer<ClientLog> = settings
        .assigned_consumer_config("grader")
        .create_with_context(settings.client_log())
        .map_err(|err| NotRun(format!("Kafka client: {err}")))?;
    tokio::task::block_in_place(|| partition_count(&consumer)).map_err(|err| {
        NotRun(format!(
            "the broker at {} does not answer ({err}); is the stack running?",
            setup.brokers
        ))
    })?;

    if setup.in_container {
        take_over_the_stack(setup).await.map_err(NotRun)?;
    }
    if let Some(server) = &setup.mysql_server {
        let url = fresh_database(server, &setup.run_name)
            .await
            .map_err(|err| NotRun(format!("MySQL at {server}: {err}; is the stack running?")))?;
        *setup.mysql_url.lock().unwrap() = Some(url);
    }
    // The producer recreates the topic; deleting it first makes sure the
    // topic found below is the new one, not a leftover.
    topic::delete_topic_if_exists(&settings, TOPIC)
        .await
        .map_err(|err| NotRun(format!("cannot delete the old topic: {err}")))?;
    wait_until(Duration::from_secs(30), || {
        tokio::task::block_in_place(|| partition_count(&consumer)) == Ok(0)
    })
    .await
    .map_err(|()| NotRun("the old topic did not go away within 30 s".into()))?;

    let mut generator = setup
        .command("weather-generator", "weather-generator")
        .map_err(NotRun)?;
    generator.env("AUTOGRADER_DELAY_OVERRIDE_VAL", "0.01");
    let producer = setup.command("producer", "producer").map_err(NotRun)?;
    setup
        .start("weather-generator", generator)
        .map_err(NotRun)?;
    let started = Instant::now();
    setup.start("producer", producer).map_err(NotRun)?;
    let mut seen = 0;
    while started.elapsed() < Duration::from_secs(60) {
        seen = tokio::task::block_in_place(|| partition_count(&consumer)).unwrap_or(0);
        if seen == 4 {
            return Ok(format!(
                "4 partitions after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        for program in ["weather-generator", "producer"] {
            setup.alive(program).map_err(Failed)?;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(Failed(format!(
        "after 60 s the topic has {seen} partitions; producer log: {}",
        setup.log_tail("producer")
    )))
}

/// In the course container the grader checks the stack's own table, HDFS
/// directory, checkpoints and stats files, which an earlier run (a student's,
/// or an earlier grade) may have filled: old rows would be produced again and
/// old files taken as this run's results. So, like the course's autograder,
/// it takes the stack over: it refuses while any of the pipeline's programs
/// runs in the container (they would write into what it checks), then empties
/// the table and removes the checkpoints and stats files. Batches go in check 4.
async fn take_over_the_stack(setup: &Setup) -> Result<(), String> {
    let running = crate::setup::running_programs();
    if !running.is_empty() {
        return Err(format!(
            "programs of the pipeline are running in this container and would write into what the grader checks: {}; stop them first",
            running.join(", ")
        ));
    }
    let url = weather_generator::course_mysql_url(std::env::var("PROJECT").ok().as_deref())?;
    // The generator's own connection (it waits for MySQL) and table.
    let database = weather_generator::Database::connect(&url, Duration::from_secs(30))
        .await
        .map_err(|err| err.to_string())?;
    database
        .create_table()
        .await
        .map_err(|err| err.to_string())?;
    sqlx::query("TRUNCATE TABLE temperatures")
        .execute(database.pool())
        .await
        .map_err(|err| format!("cannot empty CS544.temperatures: {err}"))?;
    for partition in 0..4 {
        for dir in [Path::new(&setup.checkpoint_dir), setup.stats_dir.as_path()] {
            let path = dir.join(format!("partition-{partition}.json"));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(format!(
                        "cannot remove {} of an earlier run: {err}",
                        path.display()
                    ))
                }
            }
        }
    }
    Ok(())
}

async fn fresh_database(server: &str, name: &str) -> Result<String, String> {
    let mut connection = tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::MySqlConnection::connect(server),
    )
    .await
    .map_err(|_| "no answer within 10 s".to_string())?
    .map_err(|err| err.to_string())?;
    sqlx::query(&format!("CREATE DATABASE `{name}`"))
        .execute(&mut connection)
        .await
        .map_err(|err| err.to_string())?;
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

/// Drops the database the first check created (local runs only).
pub async fn drop_database(setup: &Setup) {
    let (Some(server), true) = (
        &setup.mysql_server,
        setup.mysql_url.lock().unwrap().is_some(),
    ) else {
        return;
    };
    if let Ok(mut connection) = sqlx::MySqlConnection::connect(server).await {
        let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", setup.run_name))
            .execute(&mut connection)
            .await;
        if let Err(err) = dropped {
            tracing::warn!(database = %setup.run_name, error = %err, "could not drop the grader's database");
        }
    }
}

async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if done() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if done() {
        Ok(())
    } else {
        Err(())
    }
}

async fn read_without_group(setup: &Setup) -> Result<String, Problem> {
    let settings = settings(setup);
    let consumer: BaseConsumer<ClientLog> = settings
        .assigned_consumer_config("grader-reader")
        .create_with_context(settings.client_log())
        .map_err(|err| NotRun(format!("Kafka client: {err}")))?;
    let assignment = topic::from_beginning(TOPIC, 4).map_err(|err| NotRun(err.to_string()))?;
    consumer
        .assign(&assignment)
        .map_err(|err| NotRun(err.to_string()))?;
    let started = Instant::now();
    let mut messages = 0u64;
    let mut stations = BTreeSet::new();
    let mut problems = Vec::new();
    while started.elapsed() < Duration::from_secs(10) && stations.len() < 10 {
        let Some(polled) =
            tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(200)))
        else {
            continue;
        };
        let message = match polled {
            Ok(message) => message,
            Err(err) => return Err(Failed(format!("reading the topic: {err}"))),
        };
        messages += 1;
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        let want = COURSE_PARTITIONS
            .iter()
            .find(|(s, _)| *s == key)
            .map(|(_, p)| *p);
        match want {
            None => problems.push(format!("key {key:?} is not StationA-J")),
            Some(want) if want != message.partition() => problems.push(format!(
                "{key} in partition {} (the course puts it in {want})",
                message.partition()
            )),
            Some(_) => {}
        }
        if let Ok(report) = report::Report::from_bytes(message.payload().unwrap_or_default()) {
            if report.station_id != key {
                problems.push(format!("key {key} but station_id {}", report.station_id));
            }
        } else {
            problems.push(format!("{key}: the value is not a Report"));
        }
        stations.insert(key);
        if problems.len() > 5 {
            break;
        }
    }
    if messages == 0 {
        return Err(Failed("no message within 10 s".into()));
    }
    if !problems.is_empty() {
        problems.dedup();
        return Err(Failed(problems.join("; ")));
    }
    if stations.len() < 10 {
        return Err(Failed(format!(
            "{messages} messages in 10 s, but only stations {stations:?}"
        )));
    }
    Ok(format!(
        "all 10 stations in their partitions within {:.1} s",
        started.elapsed().as_secs_f64()
    ))
}

async fn debug_line(setup: &Setup) -> Result<String, Problem> {
    let mut command = setup.command("debug", "debug").map_err(NotRun)?;
    command.stdout(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|err| NotRun(format!("cannot start debug: {err}")))?;
    let stdout = child.stdout.take().expect("piped");
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let read = std::io::BufReader::new(stdout).read_line(&mut first);
        let _ = send.send(read.map(|_| first));
    });
    // debug starts at the group's position (the end, on a first run), so it
    // prints what is produced while it runs, as in the course.
    let line = tokio::task::block_in_place(|| receive.recv_timeout(Duration::from_secs(10)));
    crate::setup::signal(&child, rustix::process::Signal::INT);
    let _ = tokio::task::block_in_place(|| child.wait());
    let line = match line {
        Ok(Ok(line)) if !line.is_empty() => line,
        Ok(Ok(_)) => {
            return Err(Failed(format!(
                "debug printed nothing; log: {}",
                setup.log_tail("debug")
            )))
        }
        Ok(Err(err)) => return Err(Failed(format!("reading debug's output: {err}"))),
        Err(_) => return Err(Failed("debug printed no line within 10 s".into())),
    };
    let parsed: serde_json::Value =
        serde_json::from_str(&line.replace('\'', "\"")).map_err(|err| {
            Failed(format!(
                "{:?} does not parse as the graders parse it: {err}",
                line.trim_end()
            ))
        })?;
    let keys: BTreeSet<&str> = parsed
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let want: BTreeSet<&str> = ["station_id", "date", "degrees", "partition"].into();
    if keys != want {
        return Err(Failed(format!("the line has keys {keys:?}, not {want:?}")));
    }
    Ok(line.trim_end().to_string())
}

fn consumer_label(partition: i32) -> String {
    format!("consumer-{partition}")
}

fn start_consumer(setup: &Setup, partition: i32, reset: bool) -> Result<(), String> {
    let label = consumer_label(partition);
    let mut command = setup.command("consumer", &label)?;
    command.arg(partition.to_string());
    if reset {
        // The topic was just recreated: checkpoints of an earlier run are stale.
        command.arg("--reset");
    }
    if !setup.in_container {
        command
            .arg("--store")
            .arg(&setup.store)
            .arg("--checkpoint-dir")
            .arg(&setup.checkpoint_dir);
    }
    setup.start(&label, command)
}

async fn consumers_commit(setup: &Setup) -> Result<String, Problem> {
    let store = Store::open(&setup.store).map_err(|err| NotRun(err.to_string()))?;
    if setup.in_container {
        // Batches of an earlier run would otherwise be counted.
        let names = store
            .list(batch_store::batch_file::DATA_DIR)
            .await
            .map_err(|err| NotRun(format!("cannot list the batches of an earlier run: {err}")))?;
        for name in names {
            if BatchFile::parse(&name).is_some() {
                let path = batch_store::join(batch_store::batch_file::DATA_DIR, &name);
                store.delete(&path).await.map_err(|err| {
                    NotRun(format!("cannot remove {path} of an earlier run: {err}"))
                })?;
            }
        }
    }
    for partition in 0..4 {
        start_consumer(setup, partition, true).map_err(NotRun)?;
    }
    let checkpoints =
        CheckpointDir::open(&setup.checkpoint_dir).map_err(|err| NotRun(err.to_string()))?;
    let started = Instant::now();
    let mut state = BTreeMap::new();
    while started.elapsed() < Duration::from_secs(60) {
        state.clear();
        for partition in 0..4 {
            if let Ok(Some(cp)) = checkpoints.load(partition).await {
                if cp.offset > 0 {
                    state.insert(partition, cp);
                }
            }
            setup.alive(&consumer_label(partition)).map_err(Failed)?;
        }
        if state.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if state.len() < 4 {
        let missing: Vec<i32> = (0..4).filter(|p| !state.contains_key(p)).collect();
        return Err(Failed(format!(
            "after 60 s no checkpoint with a non-zero offset for partitions {missing:?}"
        )));
    }
    let mut summary = Vec::new();
    for (partition, cp) in &state {
        for batch in 0..=cp.batch_id {
            let file = BatchFile::new(*partition, batch);
            read_batch(&store, &file)
                .await
                .map_err(|err| Failed(format!("{}: {err}", file.path())))?;
        }
        summary.push(format!(
            "p{partition}: batches 0..={} offset {}",
            cp.batch_id, cp.offset
        ));
    }
    if !checkpoints.is_local() {
        summary.push(format!("checkpoints in {}", checkpoints.dir().display()));
    }
    Ok(summary.join(", "))
}

async fn crash_recovery(setup: &Setup) -> Result<String, Problem> {
    const PARTITION: i32 = 0;
    let checkpoints =
        CheckpointDir::open(&setup.checkpoint_dir).map_err(|err| NotRun(err.to_string()))?;
    let offset = |cp: Option<batch_store::Checkpoint>| cp.map_or(0, |cp| cp.offset);
    setup
        .kill(&consumer_label(PARTITION))
        .map_err(|err| NotRun(format!("cannot SIGKILL consumer 0: {err}")))?;
    let before = offset(
        checkpoints
            .load(PARTITION)
            .await
            .map_err(|err| Failed(err.to_string()))?,
    );
    start_consumer(setup, PARTITION, false).map_err(NotRun)?;
    let mut after = before;
    let started = Instant::now();
    while after <= before && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        setup.alive(&consumer_label(PARTITION)).map_err(Failed)?;
        after = offset(
            checkpoints
                .load(PARTITION)
                .await
                .map_err(|err| Failed(err.to_string()))?,
        );
    }
    if after <= before {
        return Err(Failed(format!(
            "after the restart the checkpoint stayed at offset {before} for 60 s; log: {}",
            setup.log_tail(&consumer_label(PARTITION))
        )));
    }
    // Stop it so the checkpoint holds still while it is compared.
    setup.stop(&consumer_label(PARTITION));
    let store = Store::open(&setup.store).map_err(|err| NotRun(err.to_string()))?;
    let committed = read_committed(&store, &checkpoints, PARTITION)
        .await
        .map_err(|err| Failed(err.to_string()))?;
    let end = offset(
        checkpoints
            .load(PARTITION)
            .await
            .map_err(|err| Failed(err.to_string()))?,
    );
    let topic = tokio::task::block_in_place(|| topic_prefix(setup, PARTITION, end))
        .map_err(|err| Failed(format!("reading partition 0: {err}")))?;
    if committed != topic {
        let extra = committed.len() as i64 - topic.len() as i64;
        return Err(Failed(format!(
            "the committed batches hold {} records, the partition up to offset {end} holds {} ({extra:+})",
            committed.len(),
            topic.len()
        )));
    }
    Ok(format!(
        "killed at offset {before}, resumed to {end}; {} records, each once, in order",
        committed.len()
    ))
}

/// The records of `partition` at offsets `0..end`.
fn topic_prefix(setup: &Setup, partition: i32, end: i64) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    topic::scan(
        &settings(setup),
        TOPIC,
        partition,
        0,
        Duration::from_secs(5),
        |message| {
            if message.offset() >= end {
                return false;
            }
            if let Ok(report) = report::Report::from_bytes(message.payload().unwrap_or_default()) {
                records.push(Record {
                    station_id: report.station_id,
                    date: report.date,
                    degrees: report.degrees,
                });
            }
            true
        },
    )
    .map_err(|err| err.to_string())?;
    Ok(records)
}

async fn stats_variant(setup: &Setup) -> Result<String, Problem> {
    let mut command = setup
        .command("consumer", "consumer-stats")
        .map_err(NotRun)?;
    command.args(["--stats", "--reset", "0", "1", "2", "3"]);
    if !setup.in_container {
        command.arg("--stats-dir").arg(&setup.stats_dir);
    }
    setup.start("consumer-stats", command).map_err(NotRun)?;
    let load = |partition: i32| -> Option<serde_json::Value> {
        let bytes =
            std::fs::read(setup.stats_dir.join(format!("partition-{partition}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let started = Instant::now();
    let mut files = Vec::new();
    while started.elapsed() < Duration::from_secs(60) {
        setup.alive("consumer-stats").map_err(Failed)?;
        files = (0..4).filter_map(load).collect();
        let ready = files.len() == 4
            && files
                .iter()
                .all(|f| f["offset"].as_i64().is_some_and(|o| o > 0));
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    setup.stop("consumer-stats");
    if files.len() < 4 {
        return Err(Failed(format!(
            "after 60 s only {} of 4 stats files exist in {}",
            files.len(),
            setup.stats_dir.display()
        )));
    }
    let mut stations = BTreeSet::new();
    for (partition, file) in files.iter().enumerate() {
        let Some(object) = file.as_object() else {
            return Err(Failed(format!(
                "partition-{partition}.json is not an object"
            )));
        };
        if object.get("offset").and_then(|o| o.as_i64()).unwrap_or(0) == 0 {
            return Err(Failed(format!("partition-{partition}.json has offset 0")));
        }
        for (station, stats) in object.iter().filter(|(k, _)| *k != "offset") {
            let days = |key: &str| {
                stats[key]
                    .as_str()
                    .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            };
            let (Some(start), Some(end), Some(count)) =
                (days("start"), days("end"), stats["count"].as_i64())
            else {
                return Err(Failed(format!("{station}: missing start, end or count")));
            };
            if count != (end - start).num_days() + 1 {
                return Err(Failed(format!(
                    "{station}: count {count} but {start}..{end} is {} days",
                    (end - start).num_days() + 1
                )));
            }
            stations.insert(station.clone());
        }
    }
    if stations.len() != 10 {
        return Err(Failed(format!(
            "stations across the files: {stations:?}, not StationA-J"
        )));
    }
    Ok("10 stations, every count matches its dates".into())
}
