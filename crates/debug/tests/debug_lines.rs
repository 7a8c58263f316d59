//! The debug consumer as graders use it: start it, read the first line of
//! stdout, swap ' for " and parse it as JSON.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use report::{partition_for_key, Report};
use serde_json::Value;
use topic::{KafkaSettings, TopicSpec};

fn settings() -> KafkaSettings {
    KafkaSettings::new(local_stack::brokers())
}

async fn send(topic: &str, reports: &[Report]) {
    send_to(&settings(), topic, reports).await;
}

async fn send_to(settings: &KafkaSettings, topic: &str, reports: &[Report]) {
    let producer: FutureProducer = settings.producer_config().create().unwrap();
    for report in reports {
        let bytes = report.to_bytes();
        let record = FutureRecord::to(topic)
            .partition(partition_for_key(report.station_id.as_bytes(), 4))
            .key(report.station_id.as_bytes())
            .payload(&bytes);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("delivered");
    }
}

fn reports(date: &str) -> Vec<Report> {
    report::STATIONS
        .iter()
        .enumerate()
        .map(|(i, station)| Report {
            date: date.into(),
            degrees: i as f64 * 2.5 - 5.0,
            station_id: station.to_string(),
        })
        .collect()
}

struct Debug {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Debug {
    fn start(topic: &str, extra: &[&str]) -> Self {
        Self::start_on(&local_stack::brokers(), topic, extra)
    }

    fn start_on(brokers: &str, topic: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_debug"))
            .args([
                "--topic",
                topic,
                "--group",
                &local_stack::unique_name("debug-test"),
            ])
            .args(extra)
            .env("P7_BROKERS", brokers)
            .stdout(Stdio::piped())
            .stderr(match std::env::var_os("P7_TEST_DEBUG_STDERR") {
                Some(path) => Stdio::from(local_stack::append_log(std::path::Path::new(&path))),
                None => Stdio::null(),
            })
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    fn next_line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .expect("debug printed no line in time")
    }
}

impl Drop for Debug {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses a line the way the graders do.
fn grader_parse(line: &str) -> serde_json::Map<String, Value> {
    let json: Value =
        serde_json::from_str(&line.replace('\'', "\"")).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    json.as_object().expect("a JSON object").clone()
}

fn check_line(line: &str, sent: &[Report]) {
    let object = grader_parse(line);
    let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["station_id", "date", "degrees", "partition"])
    );
    let station = object["station_id"].as_str().unwrap();
    let report = sent
        .iter()
        .find(|r| r.station_id == station && r.date == object["date"])
        .expect("a record we sent");
    assert_eq!(object["degrees"].as_f64(), Some(report.degrees));
    assert_eq!(
        object["partition"].as_i64(),
        Some(i64::from(partition_for_key(station.as_bytes(), 4)))
    );
}

async fn new_topic(prefix: &str) -> String {
    let topic = local_stack::unique_name(prefix);
    topic::reset_topic(&settings(), &spec_of(&topic))
        .await
        .unwrap();
    topic
}

/// `topic` as the producer (re)creates it, settling for 1 s after a deletion.
fn spec_of(topic: &str) -> TopicSpec {
    TopicSpec {
        settle: Duration::from_secs(1),
        ..TopicSpec::course(topic)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn from_the_beginning_every_line_is_a_record_the_graders_can_parse() {
    let topic = new_topic("debug-beginning").await;
    let sent = reports("2008-12-17");
    send(&topic, &sent).await;
    let debug = Debug::start(&topic, &["--from-beginning"]);
    let lines: Vec<String> = (0..sent.len())
        .map(|_| debug.next_line(Duration::from_secs(60)))
        .collect();
    for line in &lines {
        check_line(line, &sent);
    }
    let distinct: BTreeSet<&String> = lines.iter().collect();
    assert_eq!(distinct.len(), sent.len(), "each record is printed once");
    assert!(
        lines.iter().any(|l| l.contains("'degrees': 5.0,")),
        "whole numbers print as Python floats: {lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_it_starts_at_the_end_and_prints_new_records() {
    let topic = new_topic("debug-latest").await;
    let old = reports("1999-01-01");
    send(&topic, &old).await;
    let debug = Debug::start(&topic, &[]);

    // Keep producing fresh records until the group has its partitions and prints one.
    let mut sent = Vec::new();
    let first = loop {
        let day = format!("2001-01-{:02}", sent.len() / 10 + 1);
        let batch = reports(&day);
        send(&topic, &batch).await;
        sent.extend(batch);
        if let Ok(line) = debug.lines.recv_timeout(Duration::from_millis(500)) {
            break line;
        }
        assert!(
            sent.len() < 600,
            "debug printed nothing while new records kept arriving"
        );
    };
    check_line(&first, &sent);
    assert!(
        !first.contains("1999-01-01"),
        "debug must not seek to the beginning: {first}"
    );
}

/// The producer's restart deletes and recreates the topic under a running
/// debug: it carries on and prints the new topic's records, never dying by a
/// signal.
#[tokio::test(flavor = "multi_thread")]
async fn it_carries_on_when_the_topic_is_deleted_and_recreated() {
    use std::os::unix::process::ExitStatusExt;

    let topic = new_topic("debug-recreated").await;
    let mut debug = Debug::start(&topic, &["--from-beginning"]);
    let old = reports("1999-01-01");
    send(&topic, &old).await;
    for _ in 0..old.len() {
        check_line(&debug.next_line(Duration::from_secs(60)), &old);
    }

    // What the producer does at every start.
    topic::reset_topic(&settings(), &spec_of(&topic))
        .await
        .unwrap();
    // Keep producing until the new topic's records come through.
    let mut sent = Vec::new();
    let first_new = 'found: loop {
        let day = format!("2002-02-{:02}", sent.len() / 10 + 1);
        let batch = reports(&day);
        send(&topic, &batch).await;
        sent.extend(batch);
        while let Ok(line) = debug.lines.recv_timeout(Duration::from_millis(500)) {
            if line.contains("'2002-02-") {
                break 'found line;
            }
        }
        assert!(
            sent.len() < 600,
            "debug printed nothing of the recreated topic; alive: {:?}",
            debug.child.try_wait()
        );
    };
    check_line(&first_new, &sent);
    assert_eq!(
        debug.child.try_wait().unwrap(),
        None,
        "debug is still running"
    );
    let status = local_stack::signal_and_wait(&mut debug.child, "INT");
    assert_eq!((status.code(), status.signal()), (Some(0), None));
}

/// Started before the producer has made the topic (students do), debug
/// prints the first records within seconds of the topic appearing. (On
/// tansu that takes the group reader's 5 s metadata refresh; librdkafka's
/// default would leave it silent for five minutes there.)
#[tokio::test(flavor = "multi_thread")]
async fn started_before_the_topic_exists_it_prints_once_the_topic_appears() {
    let topic = local_stack::unique_name("debug-early");
    let debug = Debug::start(&topic, &["--from-beginning"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    topic::reset_topic(&settings(), &spec_of(&topic))
        .await
        .unwrap();
    let sent = reports("2003-03-03");
    send(&topic, &sent).await;
    let appeared = std::time::Instant::now();
    check_line(&debug.next_line(Duration::from_secs(30)), &sent);
    eprintln!(
        "measured: first line {:.1} s after the topic appeared",
        appeared.elapsed().as_secs_f64()
    );
}

/// Started before its broker listens (as right after `docker compose up -d`),
/// debug prints the records once the broker is up and they arrive. It took
/// the errors librdkafka queued while the broker was down (one per failed
/// connection) at a 500 ms pause each, and so printed nothing for minutes
/// (about 60 s after 20 s without a broker, in the course containers).
#[tokio::test(flavor = "multi_thread")]
async fn started_before_its_broker_it_prints_once_the_broker_is_up() {
    let port = local_stack::free_port();
    let brokers = format!("127.0.0.1:{port}");
    let topic = local_stack::unique_name("debug-before-broker");
    let debug = Debug::start_on(&brokers, &topic, &["--from-beginning"]);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let broker = local_stack::PrivateBroker::start(port);
    let settings = KafkaSettings::new(broker.brokers());
    topic::reset_topic(&settings, &spec_of(&topic))
        .await
        .unwrap();
    let sent = reports("2011-03-04");
    send_to(&settings, &topic, &sent).await;
    let sent_at = std::time::Instant::now();
    let line = debug.next_line(Duration::from_secs(30));
    check_line(&line, &sent);
    eprintln!(
        "measured: first line {:.1} s after the records were sent",
        sent_at.elapsed().as_secs_f64()
    );
}

/// Started before its broker exists (as right after `docker compose up -d`),
/// debug says nothing at all in its first minute (graders merge its stderr
/// into stdout and parse the first line; it said it could not reach the
/// broker every 0.5 s, then once), and stdout stays empty. All of stderr is
/// checked, at the default log level.
#[test]
fn an_unreachable_broker_is_not_mentioned_at_the_start() {
    let broker = local_stack::unreachable::broker();
    let mut command = Command::new(env!("CARGO_BIN_EXE_debug"));
    command
        .args(["--brokers", &broker])
        .env_remove("RUST_LOG")
        .env_remove("PROJECT");
    let output = local_stack::unreachable::run(command, Duration::from_secs(13));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stderr.trim().is_empty(), "debug wrote to stderr:\n{stderr}");
}
