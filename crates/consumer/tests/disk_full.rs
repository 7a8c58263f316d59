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
