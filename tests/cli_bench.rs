//! `bench` as a user runs it: the adapter header, JSON rows with throughput figures, and bad
//! input refused with clear errors.

mod common;

use common::cli::{bin, fails_with};

#[test]
fn peak_gflops_must_be_a_positive_finite_number() {
    // refused before any adapter is opened
    for v in ["0", "-5", "NaN", "inf"] {
        fails_with(bin().arg("bench").arg(format!("--peak-gflops={v}")), &[&format!("--peak-gflops {}", v.parse::<f64>().unwrap()), "positive number of GFLOP/s"]);
    }
    let out = bin().args(["bench", "--peak-gflops", "fast"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses a non-number");
}

#[test]
fn an_unknown_adapter_is_refused_with_the_list_of_adapters() {
    if common::gpu().is_none() {
        return;
    }
    fails_with(bin().args(["--adapter", "no-such-adapter-xyz", "bench", "--train-steps", "0"]), &["no adapter matches 'no-such-adapter-xyz'", "available:", "llvmpipe"]);
}

#[test]
fn json_rows_report_throughput_threads_workgroups_and_peak_fraction() {
    let Some(g) = common::gpu() else { return };
    let out = bin()
        .args(["bench", "--json", "--reps", "2", "--filter", "lenet_conv1", "--factors", "2", "--train-steps", "0", "--algo", "implicit", "--peak-gflops", "100"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let adapter = &lines[0]["adapter"];
    assert_eq!(adapter["name"], g.info.name.as_str(), "{text}");
    assert!(adapter["max_invocations"].as_u64().unwrap() >= 64 && adapter["max_workgroup_bytes"].as_u64().unwrap() > 0, "{text}");
    let timer = if g.has_timestamps() { "gpu" } else { "wall" };
    assert_eq!(lines.len(), 4, "adapter, dense, filter, column:\n{text}");
    for row in &lines[1..] {
        let gflops = row["gflops"].as_f64().unwrap();
        assert!(gflops > 0.0 && row["gbps"].as_f64().unwrap() > 0.0, "{row}");
        assert!((row["peak_fraction"].as_f64().unwrap() - gflops / 100.0).abs() < 1e-9, "{row}");
        assert!(row["threads"].as_u64().unwrap() >= 1 && row["groups"].as_u64().unwrap() >= 1, "{row}");
        assert_eq!(row["timer"], timer, "{row}");
        assert!(row["kernel"].as_str().unwrap().starts_with("register") || row["kernel"].as_str().unwrap().starts_with("workgroup"), "{row}");
    }
    // the text form starts with the adapter and its limits
    let out = bin().args(["bench", "--reps", "1", "--filter", "lenet_conv1", "--factors", "2", "--train-steps", "0", "--algo", "implicit", "--timer", "wall"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("adapter: ") && text.contains("invocations per workgroup") && text.contains("timed by wall clock"), "{text}");
}

/// `bench --tune` writes a winner per shape to the cache it is given, the next run reads them,
/// and a corrupt cache is ignored with a warning, never an error.
#[test]
fn tune_fills_the_cache_the_next_run_reads_and_a_corrupt_one_is_ignored() {
    if common::gpu().is_none() {
        return;
    }
    let cache = common::cli::scratch("bench", "tune.json");
    let run = || {
        let out = bin()
            .env("AUTOCOMPRESS_TUNE", "cached")
            .env("AUTOCOMPRESS_TUNE_CACHE", &cache)
            .args(["bench", "--json", "--tune", "--reps", "1", "--filter", "lenet_conv1", "--factors", "2", "--train-steps", "0", "--algo", "implicit"])
            .output()
            .unwrap();
        assert!(out.status.success(), "bench --tune failed: {}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (rows, String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (rows, _) = run();
    assert_eq!(rows[0]["adapter"]["tuning"]["entries"], 0, "{:?}", rows[0]);
    let tuned: Vec<&serde_json::Value> = rows.iter().filter(|r| r.get("tuned").is_some()).collect();
    assert_eq!(tuned.len(), 3, "dense, filter and column tuned: {rows:?}");
    for t in &tuned {
        assert!(t["ms"].as_f64().unwrap() <= t["selected_ms"].as_f64().unwrap() && t["rejected"] == 0, "{t}");
    }
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert_eq!(file["version"], 1);
    assert_eq!(file["entries"].as_object().unwrap().len(), 3);
    let (rows, _) = run();
    assert_eq!(rows[0]["adapter"]["tuning"]["entries"], 3, "the second run reads the first's winners");

    std::fs::write(&cache, "{\"version\": 1, \"entries\": {\"x\": 3").unwrap();
    let (rows, err) = run();
    assert!(err.contains("warning: ignoring the tuning cache") && err.contains("is not JSON"), "{err}");
    assert_eq!(rows[0]["adapter"]["tuning"]["entries"], 0);
    std::fs::remove_file(&cache).ok();
}

/// A malformed AUTOCOMPRESS_TUNE is an error naming the variable and the values it takes.
#[test]
fn a_malformed_tune_mode_is_refused() {
    if common::gpu().is_none() {
        return;
    }
    fails_with(bin().env("AUTOCOMPRESS_TUNE", "sometimes").args(["bench", "--train-steps", "0", "--filter", "lenet_conv1"]), &["AUTOCOMPRESS_TUNE=sometimes", "'cached' (default), 'first-use' or 'off'"]);
}
