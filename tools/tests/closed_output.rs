//! A server whose log reader went away (`magnetar standalone 2>&1 | head`) keeps serving
//! and still shuts down cleanly on SIGTERM: writes to a closed stderr are dropped, never
//! turned into a panic.

mod cli_standalone;

use std::time::Duration;

use cli_standalone::{run, Standalone};

#[test]
fn standalone_with_a_closed_log_pipe_serves_and_stops_on_sigterm() {
    let mut s = Standalone::start_with_closed_output();
    // Enough work to log plenty of lines into the closed pipe.
    let out = run(
        env!("CARGO_BIN_EXE_magnetar-client"),
        &[
            "--url",
            &s.url(),
            "produce",
            "closed-log",
            "-m",
            "hello",
            "-n",
            "20",
        ],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = s.terminate();
    assert!(status.success(), "standalone exited with {status}");
}
