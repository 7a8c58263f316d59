//! The disk where the checkpoints live fills up (a small tmpfs of the
//! test's own, so this test needs root to mount it): the commit fails with a
//! line naming the checkpoint, the previous checkpoint stays intact and
//! readable, and once space is freed the same process carries on, exactly once.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "p7-disk-full"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "cannot mount a tmpfs on {} (this test needs root): {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

/// Fills the file system of `path` until a write fails for want of space.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    loop {
        match file.write_all(&block).and_then(|()| file.sync_all()) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(28) => return,
            Err(err) => panic!("filling {}: {err}", path.display()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_checkpoint_disk_holds_the_commit_until_space_is_freed() {
    let topic = unique("disk-full");
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, 100)).await;
    let output = Output::new(false);
    let _tmpfs = Tmpfs::mount(&output.checkpoint_dir, "64k");
    let mut consumer = Running(vec![consumer_command(&topic, &output, &[0])
        .spawn()
        .unwrap()]);
    output
        .wait_for_offset(0, 100, Duration::from_secs(60))
        .await;

    let filler = output.checkpoint_dir.join("filler");
    fill(&filler);
    send(&topic, 1, &readings(100, 100)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !output.log().contains("cannot save the checkpoint") {
        assert!(
            Instant::now() < deadline,
            "no checkpoint failure logged in 30 s:\n{}",
            output.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = output.log();
    assert!(
        log.contains("No space left on device") && log.contains("partition-0.json"),
        "{log}"
    );
    // The previous checkpoint is intact and still says offset 100.
    let before = output
        .checkpoints()
        .load(0)
        .await
        .expect("a readable checkpoint");
    assert_eq!(before.map(|cp| cp.offset), Some(100));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        output.committed_offset(0).await,
        100,
        "the checkpoint moved without space"
    );

    std::fs::remove_file(&filler).unwrap();
    output
        .wait_for_offset(0, 200, Duration::from_secs(60))
        .await;
    // The same process carried on: it is still running and stops cleanly.
    terminate(&mut consumer.0[0], &output);
    assert_eq!(output.committed(0).await, topic_records(&topic, 0));
}

/// Waits until the log shows `line`.
fn wait_for_log(log: impl Fn() -> String, line: &str) {
    wait_until(
        &format!("the line {line:?}"),
        Duration::from_secs(30),
        || log().contains(line),
        &log,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_stats_disk_holds_the_save_until_space_is_freed() {
    let topic = unique("disk-full-stats");
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, 100)).await;
    let output = Output::new(false);
    let _tmpfs = Tmpfs::mount(&output.checkpoint_dir, "64k");
    let mut consumer = Running(vec![stats::stats_command(&topic, &output, &[0])
        .spawn()
        .unwrap()]);
    let offset = || stats::load(&output.checkpoint_dir, 0).map_or(0, |s| s.offset);
    wait_until(
        "offset 100",
        Duration::from_secs(60),
        || offset() == 100,
        || output.log(),
    );

    let filler = output.checkpoint_dir.join("filler");
    fill(&filler);
    send(&topic, 1, &readings(100, 100)).await;
    wait_for_log(|| output.log(), "cannot save the stats");
    let log = output.log();
    assert!(
        log.contains("No space left on device") && log.contains("partition-0.json"),
        "{log}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        offset(),
        100,
        "the stats moved without space, or were damaged"
    );

    std::fs::remove_file(&filler).unwrap();
    wait_until(
        "offset 200",
        Duration::from_secs(60),
        || offset() == 200,
        || output.log(),
    );
    terminate(&mut consumer.0[0], &output);
    let records = topic_records(&topic, 0);
    let got: std::collections::BTreeMap<_, _> = stats::load(&output.checkpoint_dir, 0)
        .unwrap()
        .stations
        .iter()
        .map(|(station, s)| (station.clone(), stats::summary(s)))
        .collect();
    assert_eq!(got, stats::expected(&records), "every record counted once");
}

/// The collector cannot roll a half-appended batch back and go on in the same
/// process without repeating its start-up recovery, so it stops instead: one
/// line naming the file, a non-zero exit, the checkpoint intact; started again
/// once there is room, it rolls back what the failed batch appended and ends
/// with every record once.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_archive_disk_stops_the_collector_and_a_restart_finishes_exactly_once() {
    let topic = unique("disk-full-collector");
    create_topic(&topic, 1).await;
    send(&topic, 1, &readings(0, 100)).await;
    let archive = archive::Archive::new();
    // Every (day, station) is a file of its own, a 4 KiB block each on tmpfs.
    let _tmpfs = Tmpfs::mount(&archive.dir, "2m");
    let mut collector = Running(vec![archive.command(&topic).spawn().unwrap()]);
    let ends = |offset| std::collections::BTreeMap::from([(0, offset)]);
    archive
        .wait_for_offsets(&topic, &ends(100), Duration::from_secs(60))
        .await;

    let filler = archive.dir.join("filler");
    fill(&filler);
    send(&topic, 1, &readings(100, 300)).await;
    let status = local_stack::wait_for_exit(&mut collector.0[0], Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the collector did not stop:\n{}", archive.log()));
    assert!(!status.success(), "{status}");
    let log = archive.log();
    let error = log
        .lines()
        .rfind(|l| l.starts_with("collector: "))
        .unwrap_or_else(|| panic!("no error line:\n{log}"));
    assert!(error.contains("No space left on device"), "{error}");
    assert!(
        error.contains(".json"),
        "the line does not name the file: {error}"
    );
    assert_eq!(
        archive.offsets(&topic),
        ends(100),
        "the checkpoint is unreadable or moved"
    );

    std::fs::remove_file(&filler).unwrap();
    let mut again = archive.command(&topic);
    again.args(["--exit-when-idle", "3"]);
    let (ok, stderr) = run_to_exit(again, Duration::from_secs(120));
    assert!(ok, "{stderr}");
    archive::assert_exactly_once(&archive, &topic, 1);
}
