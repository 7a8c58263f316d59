//! The lock that keeps a test which stops or freezes a shared service away
//! from every other process using the stack, checked from outside with
//! util-linux's flock(1), as another process sees it.

use std::process::Command;

fn other_process_gets(mode: &str) -> bool {
    let lock = local_stack::stack_dir().join("tests.lock");
    Command::new("flock")
        .args([mode, "--nonblock"])
        .arg(&lock)
        .arg("true")
        .status()
        .expect("run flock")
        .success()
}

#[test]
fn a_disruptive_test_excludes_every_other_process_and_gives_the_stack_back() {
    // Any look-up of the stack takes the shared lock for the process.
    local_stack::brokers();
    assert!(other_process_gets("--shared"), "readers share the stack");
    assert!(
        !other_process_gets("--exclusive"),
        "a disruptive test elsewhere must wait while this process uses the stack"
    );

    let exclusive = local_stack::exclusive_stack();
    assert!(
        !other_process_gets("--shared"),
        "nobody else may use the stack while a service is disrupted"
    );
    drop(exclusive);
    assert!(other_process_gets("--shared"), "the stack is shared again");
    assert!(!other_process_gets("--exclusive"));
}
