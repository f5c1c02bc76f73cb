//! Shared helpers for the tcpscope integration tests: where the corpus is, how to run the binary,
//! and how to read the Parquet output back with the parquet crate and with DuckDB.

use arrow_array::RecordBatch;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// The shared corpus (`$TCPSCOPE_CORPUS`, else `../shared/corpus` beside the workspace), or `None`
/// after printing a visible skip message naming `test`.
pub fn corpus_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("TCPSCOPE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/corpus"));
    if dir.join("pcaps").is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED {test}: corpus not found at {} (set TCPSCOPE_CORPUS)", dir.display());
        None
    }
}

/// Every capture of the corpus, sorted by name.
pub fn corpus_pcaps(corpus: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus.join("pcaps"))
        .expect("corpus pcaps folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    v.sort();
    v
}

/// The `target` folder cargo builds into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// The `tcpscope` binary of this profile, built once per test process.
pub fn tcpscope_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let release = !cfg!(debug_assertions);
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(workspace_root()).args(["build", "-q", "-p", "tcpscope", "--bin", "tcpscope"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "building tcpscope failed");
        target_dir().join(if release { "release" } else { "debug" }).join("tcpscope")
    })
    .clone()
}

/// Runs `tcpscope` with `args`.
pub fn run_tcpscope(args: &[&str]) -> Output {
    Command::new(tcpscope_bin()).args(args).output().expect("running tcpscope")
}

/// Runs `tcpscope analyze FILES --out OUT --quiet` plus `extra`, returning the output.
pub fn analyze(files: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["analyze".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend(["--out".into(), out.display().to_string(), "--quiet".into(), "--no-pin".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run_tcpscope(&refs)
}

/// Every Parquet file under `<out>/<dataset>`.
pub fn parquet_files(out: &Path, dataset: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, acc: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, acc);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    acc.push(p);
                }
            }
        }
    }
    let mut acc = Vec::new();
    walk(&out.join(dataset), &mut acc);
    acc.sort();
    acc
}

/// Reads every record batch of a dataset with the parquet crate.
pub fn read_dataset(out: &Path, dataset: &str) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for path in parquet_files(out, dataset) {
        let file = std::fs::File::open(&path).expect("open parquet");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .build()
            .expect("reader");
        for b in reader {
            batches.push(b.expect("batch"));
        }
    }
    batches
}

/// The Python interpreter that has DuckDB: `$TCPSCOPE_PYTHON`, else the workspace's `.venv`.
pub fn python_with_duckdb() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TCPSCOPE_PYTHON").map(PathBuf::from),
        Some(workspace_root().join(".venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p).args(["-c", "import duckdb"]).output().map(|o| o.status.success()).unwrap_or(false)
    })
}

/// Runs a DuckDB SQL query (in DuckDB's Python package) and returns the rows as JSON arrays of
/// strings (NULL as JSON null). Panics with a clear message when DuckDB is not installed: run
/// `scripts/test.sh`, which installs it.
pub fn duckdb_query(sql: &str) -> Vec<Vec<Option<String>>> {
    let python = python_with_duckdb()
        .expect("DuckDB's Python package is missing: run scripts/test.sh (it creates .venv with duckdb)");
    let script = r#"
import duckdb, json, sys
rows = duckdb.sql(sys.argv[1]).fetchall()
print(json.dumps([[None if v is None else str(v) for v in r] for r in rows]))
"#;
    let out = Command::new(python).args(["-c", script, sql]).output().expect("running python");
    assert!(out.status.success(), "duckdb query failed: {}\n{sql}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json rows")
}

/// `read_parquet('<out>/<dataset>/**/*.parquet', hive_partitioning=true)` for SQL.
pub fn duckdb_dataset(out: &Path, dataset: &str) -> String {
    format!("read_parquet('{}/{}/**/*.parquet', hive_partitioning=true)", out.display(), dataset)
}

/// Runs the library's engine over a capture file (read, decode with the wire length, one engine,
/// flush at the end) and returns everything it produced. A damaged file yields what came before
/// the fault; a file that cannot be opened yields nothing.
pub fn engine_over_capture(path: &Path, config: tcpscope::tcp::EngineConfig) -> tcpscope::tcp::EngineOutput {
    use tcpscope::decode::decode_frame_checked;
    use tcpscope::tcp::{CloseReason, Engine};
    let verify = config.verify_checksums;
    let mut engine = Engine::new(config);
    if let Ok(file) = tcpscope::source::pcap::CaptureFile::open(path) {
        let _ = file.read(
            |frame| {
                let decoded = decode_frame_checked(frame.link, frame.data, frame.wire_len, frame.ts, frame.packet_number, 0, verify);
                if let Ok(seg) = decoded {
                    engine.handle_segment(&seg);
                }
            },
            |_| {},
        );
    }
    engine.finish(CloseReason::EndOfInput);
    std::mem::take(&mut engine.output)
}

/// Network namespaces and processes a test created, removed (with their veth pairs) and stopped
/// when it goes out of scope, even when the test fails.
#[derive(Default)]
pub struct NamespaceLab {
    /// Namespaces to delete.
    pub namespaces: Vec<String>,
    /// Processes to kill and reap.
    pub children: Vec<Child>,
}

impl Drop for NamespaceLab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs a command and panics, naming it, when it fails.
pub fn sh(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(status.success(), "{args:?} failed");
}

/// Whether a program is on the PATH.
pub fn tool_available(name: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {name}")]).output().is_ok_and(|o| o.status.success())
}

/// Two namespaces joined by a veth pair: the client side has 198.18.0.1/24, the server side
/// 198.18.0.2/24, both links and loopback up.
pub struct VethPair {
    /// The client's namespace.
    pub client_ns: String,
    /// The server's namespace.
    pub server_ns: String,
    /// The client's veth device.
    pub client_dev: String,
    /// The server's veth device.
    pub server_dev: String,
}

impl NamespaceLab {
    /// Creates a [`VethPair`] whose names start with `prefix` (unique per test), removed when the
    /// lab is dropped. `None`, after a visible SKIPPED line, when not root or a tool is missing.
    pub fn veth_pair(prefix: &str, tools: &[&str]) -> Option<(NamespaceLab, VethPair)> {
        let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let missing: Vec<&str> = ["ip"].iter().chain(tools).copied().filter(|t| !tool_available(t)).collect();
        if !is_root || !missing.is_empty() {
            eprintln!("SKIPPED namespace test {prefix}: needs root and {}", ["ip"].iter().chain(tools).copied().collect::<Vec<_>>().join(", "));
            return None;
        }
        let tag = std::process::id();
        let mut lab = NamespaceLab::default();
        let pair = VethPair {
            client_ns: format!("tcpscope-{prefix}c{tag}"),
            server_ns: format!("tcpscope-{prefix}s{tag}"),
            client_dev: format!("t{prefix}c{tag}").chars().take(15).collect(),
            server_dev: format!("t{prefix}s{tag}").chars().take(15).collect(),
        };
        for ns in [&pair.client_ns, &pair.server_ns] {
            sh(&["ip", "netns", "add", ns]);
            lab.namespaces.push(ns.clone());
        }
        sh(&[
            "ip", "link", "add", &pair.client_dev, "netns", &pair.client_ns, "type", "veth", "peer", "name",
            &pair.server_dev, "netns", &pair.server_ns,
        ]);
        for (ns, dev, addr) in
            [(&pair.client_ns, &pair.client_dev, "198.18.0.1/24"), (&pair.server_ns, &pair.server_dev, "198.18.0.2/24")]
        {
            sh(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        Some((lab, pair))
    }
}
