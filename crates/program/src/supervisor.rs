//! A program that reads from Kafka runs as two processes: the one the user
//! started, which only supervises, and a worker (the same binary, the same
//! arguments) that does the work. When the worker dies of a crash signal
//! (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT), the supervisor logs one line
//! and starts it again, and the worker resumes from what is committed: every
//! sink is crash-safe by design, so a restart neither loses nor duplicates a
//! record. The user's process never dies of a signal it was not sent.
//!
//! Why: librdkafka 2.12.1 (the version rdkafka-sys bundles) dereferences a
//! NULL topic name when a broker answers a fetch for a deleted topic with an
//! all-zero topic id and a leader hint (tansu does; docs/faults.md has the
//! backtrace and the upstream fix). No client setting avoids it, and the
//! restarted worker then meets the recreated topic through the same start-up
//! checks as any restart: a consumer stops with one line, `debug` carries on.
//!
//! SIGINT and SIGTERM sent to the supervisor are passed on to the worker,
//! which stops cleanly; the supervisor then exits with the worker's code.
//! The worker starts with both blocked and unblocks them once it listens for
//! them (`shutdown_on_signals`), so a stop asked for while it starts up waits
//! until it can stop cleanly instead of killing it half-way. A
//! supervisor killed outright takes its worker with it (PR_SET_PDEATHSIG), so
//! nothing is left holding a partition's lock. `P7_SUPERVISE=0` runs the
//! program in one process (for a debugger).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Set in the worker's environment (and removed again at its start).
const WORKER_ENV: &str = "P7_SUPERVISED_WORKER";
/// Set in the environment of a worker started again after a crash.
const RESTART_ENV: &str = "P7_WORKER_RESTARTED";
/// `0` turns supervision off.
const SUPERVISE_ENV: &str = "P7_SUPERVISE";

/// Crashes within [`CRASH_WINDOW`] after which the supervisor gives up: a
/// worker that crashes again at once is not helped by another start.
const CRASHES_TOLERATED: usize = 3;
const CRASH_WINDOW: Duration = Duration::from_secs(60);

/// The supervisor's process id, in a worker.
static SUPERVISOR: OnceLock<i32> = OnceLock::new();
/// Whether this worker was started again after its predecessor crashed.
static RESTARTED: AtomicBool = AtomicBool::new(false);
/// The running worker's process id (0: none).
static WORKER: AtomicI32 = AtomicI32::new(0);
/// Whether SIGINT or SIGTERM has asked the program to stop.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Call first thing in `main`, before any thread exists, when the program
/// runs until it is stopped: its worker must call `shutdown_on_signals` (the
/// only thing that lets SIGINT and SIGTERM reach it). In the supervisor it
/// runs the worker until the program is done and returns the exit code; in
/// the worker (or with supervision off) it returns `None` and `main` goes on.
pub fn supervise(program: &str) -> Option<ExitCode> {
    if let Some(supervisor) = std::env::var_os(WORKER_ENV) {
        // Only this process is the worker: the variable must not reach a
        // program it starts. No other thread exists yet.
        std::env::remove_var(WORKER_ENV);
        if std::env::var_os(RESTART_ENV).is_some() {
            std::env::remove_var(RESTART_ENV);
            RESTARTED.store(true, Ordering::SeqCst);
        }
        if let Some(pid) = supervisor.to_str().and_then(|pid| pid.parse().ok()) {
            let _ = SUPERVISOR.set(pid);
        }
        return None;
    }
    if std::env::var(SUPERVISE_ENV).is_ok_and(|value| value == "0") {
        return None;
    }
    Some(run(program))
}

/// Whether this process is a worker started again after a crash (its
/// predecessor died without a goodbye: e.g. it left a group member behind).
pub fn restarted_after_crash() -> bool {
    RESTARTED.load(Ordering::SeqCst)
}

/// Ends the whole program at once, as a SIGKILL would (supervisor and
/// worker alike): the crash tests' way to die mid-commit.
pub fn kill_program() -> ! {
    if let Some(&supervisor) = SUPERVISOR.get() {
        // The supervisor's death takes this worker with it (PR_SET_PDEATHSIG).
        send(supervisor, libc::SIGKILL);
    }
    std::process::abort()
}

fn run(program: &str) -> ExitCode {
    let signals = match stop_signals() {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("{program}: cannot take over SIGINT and SIGTERM: {err}");
            return ExitCode::FAILURE;
        }
    };
    std::thread::spawn(move || forward_stop_signals(signals));
    let mut crashes: Vec<Instant> = Vec::new();
    loop {
        let status = match start_worker(signals, !crashes.is_empty()).and_then(|mut worker| {
            WORKER.store(worker.id() as i32, Ordering::SeqCst);
            if STOPPING.load(Ordering::SeqCst) {
                // Asked to stop before the worker's id was known to the
                // forwarding thread.
                send(worker.id() as i32, libc::SIGTERM);
            }
            let status = worker.wait();
            WORKER.store(0, Ordering::SeqCst);
            status
        }) {
            Ok(status) => status,
            Err(err) => {
                eprintln!("{program}: cannot start its worker process: {err}");
                return ExitCode::FAILURE;
            }
        };
        let signal = match (status.code(), status.signal()) {
            (Some(code), _) => return ExitCode::from(code.clamp(0, 255) as u8),
            (None, Some(signal)) => signal,
            (None, None) => return ExitCode::FAILURE,
        };
        if !is_crash(signal) {
            // Someone else's signal (SIGKILL, SIGHUP, …): the program ends the
            // way its worker did.
            die_of(signal);
        }
        let now = Instant::now();
        crashes.retain(|at| now.duration_since(*at) < CRASH_WINDOW);
        crashes.push(now);
        let name = signal_name(signal);
        if STOPPING.load(Ordering::SeqCst) {
            eprintln!("{program}: the worker process crashed ({name}) while stopping");
            return ExitCode::FAILURE;
        }
        if crashes.len() >= CRASHES_TOLERATED {
            eprintln!(
                "{program}: the worker process crashed {} times within {}s (last: {name}); \
                 giving up (see docs/faults.md)",
                crashes.len(),
                CRASH_WINDOW.as_secs()
            );
            return ExitCode::FAILURE;
        }
        eprintln!(
            "{program}: the worker process crashed ({name}), most likely inside librdkafka on a \
             deleted topic (docs/faults.md); starting it again from what is committed"
        );
    }
}

/// SIGINT and SIGTERM, blocked in this thread and every thread it starts, so
/// that one thread can wait for them with `sigwait`.
fn stop_signals() -> std::io::Result<libc::sigset_t> {
    let set = stop_signal_set();
    mask_stop_signals(libc::SIG_BLOCK)?;
    Ok(set)
}

#[allow(unsafe_code)]
fn stop_signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset fill a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks (`SIG_BLOCK`) or unblocks (`SIG_UNBLOCK`) SIGINT and SIGTERM in
/// the calling thread.
#[allow(unsafe_code)]
pub(crate) fn mask_stop_signals(how: libc::c_int) -> std::io::Result<()> {
    let set = stop_signal_set();
    // SAFETY: pthread_sigmask changes only this thread's mask.
    match unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) } {
        0 => Ok(()),
        err => Err(std::io::Error::from_raw_os_error(err)),
    }
}

/// Passes every SIGINT and SIGTERM on to the worker. A terminal's Ctrl+C
/// reaches the worker directly too (same process group); a second request
/// to stop changes nothing for it.
#[allow(unsafe_code)]
fn forward_stop_signals(signals: libc::sigset_t) {
    loop {
        let mut signal = 0;
        // SAFETY: sigwait reads the set and writes the signal number.
        if unsafe { libc::sigwait(&signals, &mut signal) } != 0 {
            continue;
        }
        STOPPING.store(true, Ordering::SeqCst);
        let worker = WORKER.load(Ordering::SeqCst);
        if worker > 0 {
            send(worker, signal);
        }
    }
}

#[allow(unsafe_code)]
fn send(pid: i32, signal: i32) {
    // SAFETY: kill only sends a signal.
    unsafe {
        libc::kill(pid, signal);
    }
}

#[allow(unsafe_code)]
fn start_worker(signals: libc::sigset_t, restart: bool) -> std::io::Result<std::process::Child> {
    let supervisor = std::process::id() as libc::pid_t;
    let mut args = std::env::args_os();
    let mut command = Command::new(std::env::current_exe()?);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    command.args(args).env(WORKER_ENV, supervisor.to_string());
    if restart {
        command.env(RESTART_ENV, "1");
    }
    // SAFETY: between fork and exec the closure calls only async-signal-safe
    // functions (pthread_sigmask, prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            // The worker starts with SIGINT and SIGTERM blocked (whatever the
            // standard library did to the mask) and unblocks them in
            // `shutdown_on_signals`.
            if libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut()) != 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor may have died before the line above took effect.
            if libc::getppid() != supervisor {
                return Err(std::io::Error::other("the supervisor is gone"));
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Signals that mean the worker itself failed, not that it was sent a signal.
fn is_crash(signal: i32) -> bool {
    matches!(
        signal,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGABRT
    )
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGABRT => "SIGABRT",
        _ => return format!("signal {signal}"),
    };
    format!("signal {signal}, {name}")
}

/// Ends this process by `signal`, as its worker ended.
#[allow(unsafe_code)]
fn die_of(signal: i32) -> ! {
    // SAFETY: resetting a disposition, unblocking and raising a signal
    // affect only this process, which is about to end.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
    std::process::exit(128 + signal)
}

#[cfg(test)]
mod tests {
    use super::{is_crash, signal_name};

    #[test]
    fn only_a_failure_of_the_worker_itself_is_a_crash() {
        for crash in [libc::SIGSEGV, libc::SIGBUS, libc::SIGABRT] {
            assert!(is_crash(crash), "{crash}");
        }
        for sent in [libc::SIGKILL, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            assert!(!is_crash(sent), "{sent}");
        }
        assert_eq!(signal_name(libc::SIGSEGV), "signal 11, SIGSEGV");
    }
}
