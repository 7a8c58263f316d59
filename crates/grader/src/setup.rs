//! Where the checks run: the local stack (binaries next to the grader, the
//! stack's services, a fresh database and output directories), or inside the
//! course's kafka container (binaries on PATH, the container's defaults).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Cli;

pub struct Setup {
    /// Inside the course container: every program runs with its defaults.
    pub in_container: bool,
    bin_dir: Option<PathBuf>,
    pub brokers: String,
    /// Local: the server URL; the first check creates the grader's database on it.
    pub mysql_server: Option<String>,
    /// Local: the grader's own database, once created.
    pub mysql_url: Mutex<Option<String>>,
    /// Where `consumer N` writes batches, as the consumer's `--store`.
    pub store: String,
    /// Where the consumers' checkpoints are: a directory, or on HDFS.
    pub checkpoint_dir: String,
    pub stats_dir: PathBuf,
    /// Logs of the programs the grader starts.
    pub work: PathBuf,
    /// A name for what this run creates (database, HDFS directory).
    pub run_name: String,
    children: Mutex<Vec<(String, Child)>>,
}

impl Setup {
    pub async fn new(cli: &Cli) -> anyhow::Result<Self> {
        let in_container = std::env::var_os("PROJECT").is_some_and(|p| !p.is_empty());
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
        let run_name = format!("grader_{stamp}_{}", std::process::id());
        let work = std::env::temp_dir().join(&run_name);
        std::fs::create_dir_all(&work)
            .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", work.display()))?;
        if in_container {
            return Ok(Self {
                in_container,
                bin_dir: None,
                brokers: cli.brokers.clone(),
                mysql_server: None,
                mysql_url: Mutex::new(None),
                store: "hdfs://boss:9000".into(),
                checkpoint_dir: "/".into(),
                stats_dir: PathBuf::from("/src"),
                work,
                run_name,
                children: Mutex::new(Vec::new()),
            });
        }
        let bin_dir = match &cli.bin_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_exe()?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        let store = match &cli.hdfs_url {
            Some(url) => format!("{}/{run_name}", url.trim_end_matches('/')),
            None => work.join("store").display().to_string(),
        };
        let checkpoint_dir = if cli.checkpoints_on_hdfs {
            if !store.starts_with("hdfs://") {
                anyhow::bail!(
                    "--checkpoints-on-hdfs needs --hdfs-url (P7_HDFS_URL) to be an hdfs:// URL"
                );
            }
            format!("{store}/checkpoints")
        } else {
            work.join("checkpoints").display().to_string()
        };
        Ok(Self {
            in_container,
            bin_dir: Some(bin_dir),
            brokers: cli.brokers.clone(),
            mysql_server: cli.mysql_url.clone(),
            mysql_url: Mutex::new(None),
            store,
            checkpoint_dir,
            stats_dir: work.join("stats"),
            work,
            run_name,
            children: Mutex::new(Vec::new()),
        })
    }

    /// The program to run, or why it cannot be.
    pub fn program(&self, name: &str) -> Result<PathBuf, String> {
        match &self.bin_dir {
            Some(dir) => {
                let path = dir.join(name);
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(format!(
                        "{} does not exist (build it: cargo build --release --bins)",
                        path.display()
                    ))
                }
            }
            None => std::env::var_os("PATH")
                .and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|dir| dir.join(name))
                        .find(|path| path.is_file())
                })
                .ok_or_else(|| format!("{name} is not on PATH")),
        }
    }

    /// A command for one of the pipeline's programs, with the settings of
    /// this setup and its stderr in `<work>/<log>.log`.
    pub fn command(&self, name: &str, log: &str) -> Result<Command, String> {
        let mut command = Command::new(self.program(name)?);
        if !self.in_container {
            command
                .env("P7_BROKERS", &self.brokers)
                .env_remove("P7_STORE")
                .env_remove("P7_CHECKPOINT_DIR")
                .env_remove("P7_STATS_DIR");
            if let Some(url) = self.mysql_url.lock().unwrap().as_ref() {
                command.env("P7_MYSQL_URL", url);
            }
        }
        let log_file = std::fs::File::create(self.work.join(format!("{log}.log")))
            .map_err(|err| format!("cannot create a log in {}: {err}", self.work.display()))?;
        command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            // A process group of its own: a terminal's Ctrl+C reaches the
            // grader alone, which then stops what it started.
            .process_group(0);
        Ok(command)
    }

    /// Starts a program that runs until the grader ends (or kills it).
    pub fn start(&self, label: &str, mut command: Command) -> Result<(), String> {
        let child = command
            .spawn()
            .map_err(|err| format!("cannot start {label}: {err}"))?;
        self.children
            .lock()
            .unwrap()
            .push((label.to_string(), child));
        Ok(())
    }

    /// Whether a started program is still running; `Err` with its log tail if not.
    pub fn alive(&self, label: &str) -> Result<(), String> {
        let mut children = self.children.lock().unwrap();
        let Some((_, child)) = children.iter_mut().find(|(l, _)| l == label) else {
            return Err(format!("{label} was never started"));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{label} exited ({status}): {}",
                self.log_tail(label)
            )),
            Err(err) => Err(err.to_string()),
        }
    }

    /// SIGKILLs a started program (a crash) and forgets it.
    pub fn kill(&self, label: &str) -> Result<(), String> {
        let mut children = self.children.lock().unwrap();
        let index = children
            .iter()
            .position(|(l, _)| l == label)
            .ok_or_else(|| format!("{label} was never started"))?;
        let (_, mut child) = children.remove(index);
        child.kill().map_err(|err| err.to_string())?;
        child.wait().map_err(|err| err.to_string())?;
        Ok(())
    }

    /// Stops a started program with SIGTERM (SIGKILL after 10 s).
    pub fn stop(&self, label: &str) {
        let child = {
            let mut children = self.children.lock().unwrap();
            children
                .iter()
                .position(|(l, _)| l == label)
                .map(|i| children.remove(i).1)
        };
        if let Some(child) = child {
            terminate(label, child);
        }
    }

    /// The last lines a program logged, for messages.
    pub fn log_tail(&self, log: &str) -> String {
        let text =
            std::fs::read_to_string(self.work.join(format!("{log}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(3).collect();
        if lines.is_empty() {
            "(no log)".into()
        } else {
            lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
        }
    }

    /// Stops everything the grader started.
    pub fn finish(&self) {
        let children: Vec<(String, Child)> = std::mem::take(&mut *self.children.lock().unwrap());
        for (label, child) in children {
            terminate(&label, child);
        }
    }
}

/// The pipeline's programs that write what the grader checks (the table, the
/// topic, checkpoints, batches, stats files), running on this machine (in the
/// course container: in the container), as `name args (pid N)`: found by the
/// program name of each process's command line in /proc.
pub fn running_programs() -> Vec<String> {
    const PROGRAMS: [&str; 3] = ["weather-generator", "producer", "consumer"];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmdline
            .split(|&b| b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned());
        let Some(program) = args.next() else {
            continue;
        };
        let name = Path::new(&program)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if PROGRAMS.contains(&name.as_str()) {
            let line: Vec<String> = std::iter::once(name).chain(args).collect();
            found.push((pid, line.join(" ")));
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|(pid, line)| format!("{line} (pid {pid})"))
        .collect()
}

/// Sends `signal` to a child (the kafka container has no `kill` command).
pub fn signal(child: &Child, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Stops a child with SIGTERM, and with SIGKILL if it has not ended 10 s
/// later, which is worth a warning: the programs stop within a second.
fn terminate(label: &str, mut child: Child) {
    signal(&child, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if matches!(child.try_wait(), Ok(None)) {
        tracing::warn!(
            program = label,
            "did not stop within 10 s of SIGTERM; killing it"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
