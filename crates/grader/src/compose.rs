//! `--compose`: the same checks, run by the grader installed in the course's
//! kafka container, where every program finds its services by their compose
//! names. The report is copied out with `docker cp`.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

const REPORT_IN_CONTAINER: &str = "/tmp/grader-report.json";

pub fn run(project: &str, json: Option<&Path>) -> ExitCode {
    match run_inside(project, json) {
        Ok(code) => code,
        Err(why) => {
            eprintln!("grader: --compose could not run any check: {why}");
            ExitCode::FAILURE
        }
    }
}

fn run_inside(project: &str, json: Option<&Path>) -> Result<ExitCode, String> {
    let container = format!("{project}-kafka");
    let inspect = Command::new("docker")
        .args(["inspect", "--format", "{{.State.Running}}", &container])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => {
                "the docker CLI is not installed (use the local stack: scripts/grade)".to_string()
            }
            _ => format!("cannot run docker: {err}"),
        })?;
    if !inspect.status.success() {
        return Err(format!(
            "no container {container} (PROJECT={project}; is the compose stack up? `docker compose up -d`): {}",
            String::from_utf8_lossy(&inspect.stderr).trim()
        ));
    }
    if String::from_utf8_lossy(&inspect.stdout).trim() != "true" {
        return Err(format!("container {container} exists but is not running"));
    }
    let status = Command::new("docker")
        .args(["exec", "-e", &format!("PROJECT={project}"), &container])
        .args(["grader", "--json", REPORT_IN_CONTAINER])
        .stdin(Stdio::null())
        .status()
        .map_err(|err| format!("docker exec failed: {err}"))?;
    if let Some(path) = json {
        let copied = Command::new("docker")
            .arg("cp")
            .arg(format!("{container}:{REPORT_IN_CONTAINER}"))
            .arg(path)
            .status()
            .map_err(|err| format!("docker cp failed: {err}"))?;
        if !copied.success() {
            return Err(format!("could not copy the report out of {container}"));
        }
    }
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
