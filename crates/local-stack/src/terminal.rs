//! A program run the way a terminal runs it, for tests of what a user's keys
//! do: in a session of its own, with a pseudo-terminal as its controlling
//! terminal and as its stdin, stdout and stderr, in the terminal's foreground
//! process group. [`Terminal::interrupt`] types Ctrl+C, so the kernel's line
//! discipline sends SIGINT to that whole group, exactly as a user's terminal
//! does. Every process the program starts carries a marker in its
//! environment, so [`Terminal::left_running`] finds whatever outlived it.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;

/// The environment variable every process of a terminal's run inherits.
const MARKER: &str = "P7_TERMINAL_RUN";

pub struct Terminal {
    child: Child,
    master: File,
    screen: Arc<Mutex<String>>,
    marker: String,
}

/// A process found by its environment: what outlived a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub parent: u32,
    pub name: String,
}

impl Terminal {
    /// Starts `command` (its program, arguments, environment and working
    /// directory) on a new pseudo-terminal.
    pub fn run(command: Command) -> Terminal {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
                .expect("open a pseudo-terminal");
        rustix::pty::grantpt(&master).expect("grantpt");
        rustix::pty::unlockpt(&master).expect("unlockpt");
        let name = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
        let path = PathBuf::from(name.to_string_lossy().into_owned());
        let slave = || -> Stdio {
            let fd = rustix::fs::open(
                &path,
                OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .unwrap_or_else(|err| panic!("open {}: {err}", path.display()));
            Stdio::from(File::from(fd))
        };
        let marker = crate::unique_name("terminal");
        // setsid(1) with --ctty makes the program a session leader whose
        // controlling terminal is its stdin, the pseudo-terminal: its group is
        // then the terminal's foreground group. The child of a test process is
        // never a process group leader, so setsid does not fork and the
        // child's pid is the program's. A shell starts a foreground job with
        // SIGINT and SIGQUIT at their default action, whatever the test
        // process was given (a background job ignores both): env does that.
        let program = command.get_program().to_owned();
        let args: Vec<_> = command.get_args().map(|arg| arg.to_owned()).collect();
        let mut wrapped = Command::new("env");
        wrapped
            .args(["--default-signal=INT,QUIT", "setsid", "--ctty"])
            .arg(program)
            .args(args);
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            wrapped.current_dir(dir);
        }
        let child = wrapped
            .env(MARKER, &marker)
            .stdin(slave())
            .stdout(slave())
            .stderr(slave())
            .spawn()
            .expect("start the program on the pseudo-terminal");
        let screen = Arc::new(Mutex::new(String::new()));
        let mut reader = File::from(master.try_clone().expect("dup the terminal"));
        let shown = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // Ends with EIO once the last process holding the terminal closes it.
            while let Ok(read) = reader.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buffer[..read]).replace('\r', "");
                shown.lock().unwrap().push_str(&text);
            }
        });
        Terminal {
            child,
            master: File::from(master),
            screen,
            marker,
        }
    }

    /// The program's pid (its session's and its process group's id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types Ctrl+C.
    pub fn interrupt(&mut self) {
        self.master
            .write_all(b"\x03")
            .expect("type Ctrl+C on the terminal");
    }

    /// Everything the terminal has shown so far.
    pub fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Waits up to `timeout` until the screen shows `text` at least `times` times.
    pub fn wait_for(&self, text: &str, times: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.screen().matches(text).count() >= times {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Waits up to `timeout` for the program to exit: its status, or `None`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = crate::wait_for_exit(&mut self.child, timeout);
        // What the program wrote last reaches the reader a moment later.
        std::thread::sleep(Duration::from_millis(200));
        status
    }

    /// Every live process started from this terminal, the program included
    /// while it runs.
    pub fn left_running(&self) -> Vec<Process> {
        processes_marked(&format!("{MARKER}={}", self.marker))
    }
}

impl Drop for Terminal {
    /// Whatever is left is killed, so a failed test leaves nothing behind.
    fn drop(&mut self) {
        for process in self.left_running() {
            let _ = Command::new("kill")
                .args(["-KILL", &process.pid.to_string()])
                .status();
        }
        let _ = self.child.try_wait();
    }
}

/// Live processes (not zombies) whose environment holds `entry` (`KEY=VALUE`).
fn processes_marked(entry: &str) -> Vec<Process> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !environ.split(|b| *b == 0).any(|e| e == entry.as_bytes()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (name) state ppid ...: the name may hold spaces and parentheses.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let parent = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state == "Z" || state == "X" {
            continue;
        }
        let name = head.split_once(" (").map_or("", |(_, n)| n).to_string();
        found.push(Process { pid, parent, name });
    }
    found
}
