//! `magnetar-client` against a real `magnetar standalone`: `produce TOPIC -m MSG -n N`
//! reports N messages produced, and `consume TOPIC -s SUB -n N -p Earliest` prints each of
//! them (with `-v`: key and properties too) and exits.

mod cli_standalone;

use std::time::Duration;

use cli_standalone::{run, Standalone};

const BIN: &str = env!("CARGO_BIN_EXE_magnetar-client");
const LIMIT: Duration = Duration::from_secs(60);

fn ok(out: &std::process::Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "exit {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

#[test]
fn produce_then_consume_prints_every_message() {
    let s = Standalone::start();
    let url = s.url();
    let (out, _) = ok(&run(
        BIN,
        &[
            "--url",
            &url,
            "produce",
            "cli-topic",
            "-m",
            "hello",
            "-m",
            "world",
            "-n",
            "3",
        ],
        LIMIT,
    ));
    assert!(out.contains("6 messages successfully produced"), "{out}");

    let (out, err) = ok(&run(
        BIN,
        &[
            "--url",
            &url,
            "consume",
            "cli-topic",
            "-s",
            "sub",
            "-n",
            "6",
            "-p",
            "Earliest",
        ],
        LIMIT,
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        ["hello", "world", "hello", "world", "hello", "world"],
        "{out}"
    );
    assert!(err.contains("6 messages successfully consumed"), "{err}");
}

#[test]
fn verbose_consume_shows_key_and_properties() {
    let s = Standalone::start();
    let url = s.url();
    ok(&run(
        BIN,
        &[
            "--url",
            &url,
            "produce",
            "cli-keyed",
            "-m",
            "payload",
            "-k",
            "the-key",
            "-p",
            "color=blue",
        ],
        LIMIT,
    ));
    let (out, _) = ok(&run(
        BIN,
        &[
            "--url",
            &url,
            "consume",
            "cli-keyed",
            "-s",
            "sub",
            "-n",
            "1",
            "-p",
            "earliest",
            "-t",
            "shared",
            "-v",
        ],
        LIMIT,
    ));
    assert!(out.contains("content:payload"), "{out}");
    assert!(out.contains("key:[the-key]"), "{out}");
    assert!(out.contains("color=blue"), "{out}");
}
