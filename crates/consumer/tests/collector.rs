//! The JSON Lines collector against the real broker: the archive layout and
//! checkpoint of the data-collector design, every record exactly once after
//! deterministic crashes and repeated SIGKILLs, Ctrl+C flushing the batch,
//! lag in the log, and one clear error for bad input.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::archive::*;
use common::*;
use local_stack::Tally;

fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rfind(|l| l.starts_with("collector: ") || l.starts_with("error: "))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_is_archived_once_in_the_file_of_its_day_and_station() {
    const ROWS: u64 = 2000;
    let topic = unique("collector");
    produce(&topic, ROWS, Duration::ZERO).await.await.unwrap();
    let archive = Archive::new();
    let mut command = archive.command(&topic);
    command.args(["--exit-when-idle", "3"]);
    let (ok, stderr) = run_to_exit(command, Duration::from_secs(120));
    assert!(ok, "{stderr}");

    assert_exactly_once(&archive, &topic, 4);
    // The values are the generator's, and (date, station) names one reading.
    let lines = archive.lines();
    assert_eq!(lines.len(), ROWS as usize);
    let archived: BTreeMap<(String, String), f64> = lines
        .into_iter()
        .map(|(_, l)| ((l.date, l.station_id), l.degrees.unwrap()))
        .collect();
    let generated: BTreeMap<(String, String), f64> = readings(0, ROWS as usize)
        .into_iter()
        .map(|r| ((r.date, r.station_id), r.degrees))
        .collect();
    assert_eq!(archived, generated);
    assert_eq!(
        std::fs::read_to_string(archive.dir.join("2000-01-01/StationA_2000-01-01.jsonl")).unwrap(),
        "{\"station_id\":\"StationA\",\"date\":\"2000-01-01\",\"degrees\":23.851454295532143,\"partition\":3,\"offset\":0}\n"
    );

    // The checkpoint has the documented shape.
    let raw: serde_json::Value = serde_json::from_slice(
        &std::fs::read(archive.dir.join("checkpoints/offset_checkpoint.json")).unwrap(),
    )
    .unwrap();
    let keys: Vec<&String> = raw.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["last_updated", "offsets"]);
    let stamp = raw["last_updated"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with('Z'),
        "{stamp}"
    );
    assert_eq!(raw["offsets"][&topic].as_object().unwrap().len(), 4);

    // pandas reads a day's files the way the data-collector users do.
    let python = local_stack::python_readers();
    let out = local_stack::stdout_of(Command::new(&python)
        .arg("-c")
        .arg(
            "import glob, sys, pandas as pd\n\
             frames = [pd.read_json(f, lines=True) for f in glob.glob(sys.argv[1] + '/*/*.jsonl')]\n\
             df = pd.concat(frames)\n\
             print(len(df), sorted(df.columns))",
        )
        .arg(&archive.dir));
    assert_eq!(
        String::from_utf8_lossy(&out).trim(),
        "2000 ['date', 'degrees', 'offset', 'partition', 'station_id']"
    );

    // The log tells how far behind each partition was.
    let log = archive.log() + &stderr;
    assert!(
        log.lines()
            .any(|l| l.contains("committed") && l.contains("lag=")),
        "no lag in the log:\n{log}"
    );

    // A second run finds nothing new and changes nothing.
    let before = archive.lines();
    let mut again = archive.command(&topic);
    again.args(["--exit-when-idle", "2"]);
    let (ok, stderr) = run_to_exit(again, Duration::from_secs(60));
    assert!(ok, "{stderr}");
    assert_eq!(archive.lines(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_at_any_step_of_a_batch_leaves_every_record_exactly_once() {
    let topic = unique("collector-crash");
    create_topic(&topic, 2).await;
    send(&topic, 2, &readings(0, 600)).await;
    for point in ["mid-append", "before-checkpoint"] {
        let archive = Archive::new();
        let mut crashing = archive.command(&topic);
        crashing
            .env("P7_CRASH_POINT", format!("{point}@3"))
            .env("DATA_COLLECTOR_BATCH_SIZE", "50");
        let (ok, stderr) = run_to_exit(crashing, Duration::from_secs(60));
        assert!(!ok, "{point}: the collector did not crash:\n{stderr}");
        assert!(stderr.contains("crashing on purpose"), "{stderr}");
        let interrupted = archive.checkpoint().expect("a checkpoint before the crash");
        assert!(
            !interrupted.appending.is_empty(),
            "{point}: the checkpoint does not record the batch being appended"
        );
        if point == "mid-append" {
            let cut = interrupted.appending.keys().any(|file| {
                std::fs::read(archive.dir.join(file))
                    .is_ok_and(|bytes| !bytes.is_empty() && !bytes.ends_with(b"\n"))
            });
            assert!(cut, "the crash left no partial line to repair");
        }

        let mut resumed = archive.command(&topic);
        resumed
            .args(["--exit-when-idle", "2"])
            .env("DATA_COLLECTOR_BATCH_SIZE", "50");
        let (ok, stderr) = run_to_exit(resumed, Duration::from_secs(60));
        assert!(ok, "{point}: {stderr}");
        assert!(stderr.contains("rolled back"), "{point}: {stderr}");
        assert_exactly_once(&archive, &topic, 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkilled_collectors_leave_every_record_exactly_once() {
    const ROWS: u64 = 3000;
    let topic = unique("collector-chaos");
    let archive = Archive::new();
    let producing = produce(&topic, ROWS, Duration::from_millis(2)).await;
    let start = || -> Child {
        archive
            .command(&topic)
            .env("DATA_COLLECTOR_BATCH_SIZE", "25")
            .env("DATA_COLLECTOR_BATCH_TIMEOUT", "0.2")
            .spawn()
            .unwrap()
    };
    let mut running = Running(vec![start()]);
    running
        .kill_and_restart(
            24,
            Duration::from_millis(150),
            Duration::from_millis(500),
            |_| start(),
        )
        .await;
    producing.await.unwrap();
    let ends: BTreeMap<i32, i64> = (0..4)
        .map(|p| (p, topic_records(&topic, p).len() as i64))
        .collect();
    archive
        .wait_for_offsets(&topic, &ends, Duration::from_secs(120))
        .await;
    let status = local_stack::signal_and_wait(&mut running.0[0], "TERM");
    assert!(status.success(), "{status}; log:\n{}", archive.log());
    // Counted by (partition, offset) and content before the exact checks.
    let tally = Tally::of(
        topic_content(&topic, 4)
            .into_iter()
            .map(|((p, o), r)| (p, o, key(&r))),
        archive.lines().into_iter().map(|(_, line)| {
            let degrees = line.degrees.unwrap_or(f64::NAN);
            (
                line.partition,
                line.offset,
                (line.station_id, line.date, degrees.to_bits()),
            )
        }),
    )
    .report("jsonl-sigkill");
    assert_eq!(tally.records, ROWS, "records in the topic");
    assert!(tally.exact(), "{tally:?}");
    assert_exactly_once(&archive, &topic, 4);
    assert_eq!(archive.lines().len(), ROWS as usize);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_writes_the_batch_being_collected_and_exits_cleanly() {
    let topic = unique("collector-sigint");
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, 30)).await;
    let archive = Archive::new();
    // A batch that would otherwise wait 300 s for 1000 records.
    let mut running = Running(vec![archive.command(&topic).spawn().unwrap()]);
    let child = &mut running.0[0];
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(archive.offsets(&topic).is_empty(), "flushed before Ctrl+C");
    let started = Instant::now();
    let status = local_stack::signal_and_wait(child, "INT");
    assert!(status.success(), "{status}; log:\n{}", archive.log());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_exactly_once(&archive, &topic, 1);
    assert_eq!(archive.lines().len(), 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn latest_skips_what_was_there_before_the_first_start() {
    let topic = unique("collector-latest");
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, 20)).await;
    let archive = Archive::new();
    let mut running = Running(vec![archive
        .command(&topic)
        .env("DATA_COLLECTOR_OFFSET_RESET", "latest")
        .env("DATA_COLLECTOR_BATCH_TIMEOUT", "0.2")
        .spawn()
        .unwrap()]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    send(&topic, 1, &readings(20, 5)).await;
    archive
        .wait_for_offsets(&topic, &BTreeMap::from([(0, 25)]), Duration::from_secs(30))
        .await;
    assert!(local_stack::signal_and_wait(&mut running.0[0], "TERM").success());
    let offsets: Vec<i64> = archive.lines().into_iter().map(|(_, l)| l.offset).collect();
    assert_eq!(offsets.len(), 5, "{offsets:?}");
    assert!(offsets.iter().all(|o| (20..25).contains(o)), "{offsets:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_one_clear_error_and_changes_nothing() {
    let topic = unique("collector-bad");
    create_topic(&topic, 2).await;
    send(&topic, 2, &readings(0, 20)).await;

    // A corrupt checkpoint is never read as "start over".
    let archive = Archive::new();
    std::fs::create_dir_all(archive.dir.join("checkpoints")).unwrap();
    let checkpoint = archive.dir.join("checkpoints/offset_checkpoint.json");
    std::fs::write(&checkpoint, "{\"last_updated\": \"2026-").unwrap();
    let (ok, stderr) = run_to_exit(archive.command(&topic), Duration::from_secs(30));
    assert!(!ok);
    let line = error_line(&stderr);
    assert!(
        line.contains("offset_checkpoint.json") && line.contains("corrupt"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&checkpoint).unwrap(),
        "{\"last_updated\": \"2026-"
    );
    assert_eq!(std::fs::read_dir(&archive.dir).unwrap().count(), 1);

    // An archive that cannot be written.
    let blocked = tempfile::tempdir().unwrap();
    std::fs::write(blocked.path().join("file"), "").unwrap();
    let mut command = archive.command(&topic);
    command.env(
        "DATA_COLLECTOR_OUTPUT_DIR",
        blocked.path().join("file/archive"),
    );
    let (ok, stderr) = run_to_exit(command, Duration::from_secs(30));
    assert!(!ok);
    assert!(error_line(&stderr).contains("file/archive"), "{stderr}");

    // A partition the topic does not have.
    let fresh = Archive::new();
    let mut command = fresh.command(&topic);
    command.arg("5");
    let (ok, stderr) = run_to_exit(command, Duration::from_secs(30));
    assert!(!ok);
    assert!(
        error_line(&stderr).contains("partition 5 does not exist"),
        "{stderr}"
    );
    assert!(fresh.offsets(&topic).is_empty());

    // Bad settings.
    for (name, value) in [
        ("DATA_COLLECTOR_OFFSET_RESET", "middle"),
        ("DATA_COLLECTOR_BATCH_SIZE", "0"),
        ("DATA_COLLECTOR_BATCH_TIMEOUT", "soon"),
    ] {
        let mut command = fresh.command(&topic);
        command.env(name, value);
        let (ok, stderr) = run_to_exit(command, Duration::from_secs(30));
        assert!(!ok, "{name}={value}");
        assert!(
            stderr.contains(value)
                && stderr.lines().filter(|l| l.starts_with("error:")).count() == 1,
            "{name}={value}: {stderr}"
        );
    }

    // A second collector on the same archive.
    let mut running = Running(vec![fresh
        .command(&topic)
        .env("DATA_COLLECTOR_BATCH_TIMEOUT", "0.2")
        .spawn()
        .unwrap()]);
    let first = &mut running.0[0];
    fresh
        .wait_for_offsets(
            &topic,
            &(0..2)
                .map(|p| (p, topic_records(&topic, p).len() as i64))
                .collect(),
            Duration::from_secs(30),
        )
        .await;
    let (ok, stderr) = run_to_exit(fresh.command(&topic), Duration::from_secs(30));
    assert!(local_stack::signal_and_wait(first, "TERM").success());
    assert!(!ok);
    assert!(
        error_line(&stderr).contains("already being consumed"),
        "{stderr}"
    );
    assert_exactly_once(&fresh, &topic, 2);
}
