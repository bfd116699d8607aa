//! `callbackstream bench` as a user runs it: the built binary, its JSON
//! report, and sane figures. No timing is asserted: only that the bench
//! measured something and the gateway answered correctly.

use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_callbackstream");

fn bench_json(args: &[&str]) -> Value {
    let output: Output = Command::new(BIN)
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench {args:?} failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "bench {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn number(report: &Value, pointer: &str) -> f64 {
    report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {report:#}"))
}

#[test]
fn load_bench_reports_calls_latency_cpu_and_memory() {
    let report = bench_json(&["--duration", "1s", "--warmup", "0s", "--callers", "2"]);
    assert_eq!(report["mode"], "load");
    assert!(number(&report, "/gateway/calls") > 0.0);
    assert_eq!(
        number(&report, "/gateway/calls"),
        number(&report, "/gateway/ok")
    );
    assert_eq!(number(&report, "/gateway/wrong_replies"), 0.0);
    assert!(number(&report, "/gateway/calls_per_sec") > 0.0);
    let p50 = number(&report, "/gateway/latency_us/p50");
    let p99 = number(&report, "/gateway/latency_us/p99");
    assert!(0.0 < p50 && p50 <= p99 && p99 <= number(&report, "/gateway/latency_us/max"));
    assert!(number(&report, "/gateway/cpu_us_per_call") >= 0.0);
    assert!(number(&report, "/gateway/rss_kib") > 0.0);
    assert!(report["baseline"].is_null());
}

#[test]
fn load_bench_with_a_baseline_reports_ratios() {
    let report = bench_json(&[
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--callers",
        "2",
        "--baseline",
        "unary-echo",
    ]);
    assert!(number(&report, "/baseline/ok") > 0.0);
    assert_eq!(number(&report, "/baseline/wrong_replies"), 0.0);
    assert!(number(&report, "/ratios/throughput") > 0.0);
    assert!(report["ratios"]["p50_diff_us"].is_i64());
}

#[test]
fn idle_bench_holds_streams_and_reports_the_gateway_memory() {
    let report = bench_json(&["--idle", "20"]);
    assert_eq!(report["mode"], "idle");
    assert_eq!(number(&report, "/streams"), 20.0);
    assert_eq!(number(&report, "/connections"), 20.0);
    assert!(number(&report, "/gateway_pid") > 0.0);
    assert!(number(&report, "/rss_before_kib") > 0.0);
    assert!(number(&report, "/rss_after_kib") > 0.0);
    assert!(report["per_stream_kib"].is_number());
}

#[test]
fn idle_bench_on_one_shared_connection() {
    let report = bench_json(&["--idle", "20", "--shared-connection"]);
    assert_eq!(number(&report, "/streams"), 20.0);
    assert_eq!(number(&report, "/connections"), 1.0);
}

/// `--actors N`: N ids called once each activate N actors (GetMetadata's
/// count says so), and the report carries a rate and a memory figure.
#[test]
fn actors_bench_activates_each_id_once_and_reports_rate_and_memory() {
    let report = bench_json(&["--actors", "300", "--callers", "8"]);
    assert_eq!(report["mode"], "actors");
    assert_eq!(number(&report, "/actors"), 300.0);
    assert_eq!(number(&report, "/active_reported"), 300.0);
    assert_eq!(number(&report, "/errors"), 0.0);
    assert!(number(&report, "/activations_per_sec") > 0.0);
    assert!(number(&report, "/rss_after_kib") > 0.0);
}

/// `--timers N`: every timer fires in every slot it had, once, and the
/// report carries lateness percentiles and the gateway's CPU.
#[test]
fn timers_bench_reports_every_fire_once_with_lateness() {
    let report = bench_json(&[
        "--timers",
        "20",
        "--timer-due",
        "300ms",
        "--timer-period",
        "1s",
        "--duration",
        "2500ms",
    ]);
    assert_eq!(report["mode"], "timers");
    assert!(number(&report, "/expected_fires") >= 20.0);
    assert!(number(&report, "/fires") >= number(&report, "/expected_fires"));
    assert_eq!(number(&report, "/missed"), 0.0);
    assert_eq!(number(&report, "/duplicates"), 0.0);
    let p50 = number(&report, "/lateness_us/p50");
    assert!(p50 <= number(&report, "/lateness_us/p99"));
    assert!(number(&report, "/gateway_cpu_percent") >= 0.0);
}

#[test]
fn state_bench_reports_durable_transactions_commits_and_the_disk_fsync_rate() {
    let scratch = tempfile::TempDir::new().unwrap();
    let dir = scratch.path().join("data");
    let report = bench_json(&[
        "--state",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--callers",
        "4",
        "--baseline",
        "memory-store",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(report["mode"], "state");
    let transactions = number(&report, "/transactions");
    assert!(transactions > 0.0);
    assert!(report["errors"].as_object().unwrap().is_empty());
    let commits = number(&report, "/store_commits");
    assert!(0.0 < commits && commits <= transactions, "{report:#}");
    assert!(number(&report, "/tx_per_commit") >= 1.0);
    assert!(number(&report, "/disk_fsyncs_per_sec") > 0.0);
    let p50 = number(&report, "/latency_us/p50");
    assert!(0.0 < p50 && p50 <= number(&report, "/latency_us/p99"));
    assert!(number(&report, "/baseline_memory_store/transactions") > 0.0);
    assert!(
        dir.join("store.redb").is_file(),
        "the given directory is used"
    );
}

/// `--reminders N`: durable reminders on a gateway process, every fire once,
/// and every reminder back after the restart, with the memory they take.
#[test]
fn reminders_bench_reports_fires_and_the_restart() {
    let report = bench_json(&[
        "--reminders",
        "20",
        "--reminder-due",
        "300ms",
        "--reminder-period",
        "1s",
        "--duration",
        "2500ms",
        "--callers",
        "4",
    ]);
    assert_eq!(report["mode"], "reminders");
    assert!(number(&report, "/registered_per_sec") > 0.0);
    assert!(number(&report, "/expected_fires") >= 20.0);
    assert_eq!(number(&report, "/missed"), 0.0);
    assert_eq!(number(&report, "/duplicates"), 0.0);
    assert_eq!(number(&report, "/restart/restored"), 20.0);
    assert!(number(&report, "/restart/serving_ms") > 0.0);
    assert!(number(&report, "/restart/rss_restored_kib") > 0.0);
}
