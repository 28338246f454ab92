//! The binary as users run it: exit codes, `check-config`, `version`, `demo`, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_driftwatch");

fn driftwatch(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("DRIFTWATCH_UPSTREAM")
        .env_remove("DRIFTWATCH_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn version_prints_and_exits_0() {
    let output = driftwatch(&["version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        format!("driftwatch {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_and_config_errors_exit_2_naming_the_key() {
    let output = driftwatch(&["run", "--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "limits:\n  max_in_flite: 10\n").unwrap();
    let output = driftwatch(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("limits.max_in_flite"), "{stderr}");

    let output = driftwatch(&["run", "--upstream", "localhost:8080"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("upstream.url")
    );
}

#[test]
fn check_config_prints_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.yaml");
    std::fs::write(
        &path,
        "upstream: {url: 'http://127.0.0.1:9000', request_timeout: 5s}\n",
    )
    .unwrap();
    let output = driftwatch(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("url: http://127.0.0.1:9000"), "{printed}");
    assert!(printed.contains("request_timeout: 5s"), "{printed}");
    assert!(
        printed.contains("max_in_flight: 4096"),
        "defaults are shown: {printed}"
    );
}

#[test]
fn a_port_in_use_is_a_runtime_failure_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = driftwatch(&["run", "--listen", &addr, "--admin-listen", "127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("cannot bind proxy listener")
    );
}

#[test]
fn sigterm_stops_run_with_exit_0() {
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("DRIFTWATCH_CONFIG", "")
        .env_remove("DRIFTWATCH_CONFIG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let line: serde_json::Value = serde_json::from_str(&first).expect("JSON log lines");
    assert!(
        line["message"].as_str().unwrap().contains("listening"),
        "{first}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "driftwatch exits after SIGTERM (delay 5s by default)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn demo_runs_traffic_through_driftwatch_and_reports() {
    let output = Command::new(BIN)
        .args([
            "demo",
            "--duration",
            "20s",
            "--drift-at",
            "8s",
            "--rate",
            "400",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("/metrics"), "{stdout}");
    assert!(stdout.contains("requests="), "{stdout}");
    assert!(stdout.contains("p99="), "{stdout}");
    let sent = stdout
        .lines()
        .find(|l| l.contains("client sent"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("report line");
    let counted = stdout
        .lines()
        .find(|l| l.contains("driftwatch counted"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("counted line");
    let recommendation_requests = stdout
        .lines()
        .find(|l| l.contains("recommendation requests"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("recommendation requests line");
    assert!(sent > 1000, "{stdout}");
    assert!(recommendation_requests > 100, "{stdout}");
    assert_eq!(
        sent + recommendation_requests,
        counted,
        "every request went through driftwatch: {stdout}"
    );
    assert!(stdout.contains("errors=0"), "{stdout}");
    let records = stdout
        .lines()
        .find(|l| l.contains("records:"))
        .expect("records line");
    let delivered: u64 = records.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(delivered > 0, "{records}");
    assert!(records.contains("0 dropped"), "{records}");
    // The shift of petal_length and sepal_width is detected on those columns only, after the
    // shift and not before.
    assert!(
        stdout.contains("before the shift:") && stdout.contains("no column drifted"),
        "{stdout}"
    );
    let drifted = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("drifted:"))
        .expect("drifted line");
    assert!(
        drifted.contains("petal_length") && drifted.contains("sepal_width"),
        "{drifted}"
    );
    let not_drifted = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("not drifted:"))
        .expect("not drifted line");
    assert!(
        not_drifted.contains("sepal_length") && not_drifted.contains("petal_width"),
        "{not_drifted}"
    );
    assert!(stdout.contains("outliers:"), "{stdout}");
    assert!(stdout.contains("nan="), "NaN values are counted: {stdout}");
    // Delayed labels: accuracy falls after the concept change and the flag rises.
    assert!(stdout.contains("concept drift: flagged at"), "{stdout}");
    let accuracy = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("accuracy:"))
        .expect("accuracy line");
    let numbers: Vec<f64> = accuracy
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse().ok())
        .collect();
    assert!(
        numbers.len() >= 2 && numbers[0] > numbers[1] + 0.1,
        "{accuracy}"
    );
    // The feedback loop narrows what the plain recommender shows; exploration keeps it wide.
    let items = |variant: &str| -> Vec<u64> {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(variant))
            .unwrap_or_else(|| panic!("{variant} line: {stdout}"));
        line.split_whitespace()
            .zip(line.split_whitespace().skip(1))
            .filter(|(_, word)| word.starts_with("items"))
            .filter_map(|(n, _)| n.parse().ok())
            .collect()
    };
    let (plain, explore) = (items("recs-plain"), items("recs-explore"));
    assert!(plain.len() == 2 && explore.len() == 2, "{stdout}");
    assert!(plain[1] < plain[0] / 2, "plain collapses: {stdout}");
    assert!(
        explore[1] > plain[1] * 2,
        "exploration keeps coverage: {stdout}"
    );
}
