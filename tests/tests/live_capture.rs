//! Live capture on a veth pair between two network namespaces made by each test (198.18.0.0/15 and
//! fd00:198:18::/64 only): real HTTP and bulk TCP, a replayed project-built capture compared with
//! `analyze`, several fanout readers, and an overloaded ring whose counters must add up.
//!
//! Needs root and `ip netns`; otherwise every test prints SKIPPED and passes. Each test removes the
//! namespaces it made (a Drop guard, also on failure), bounds its packets and run times, and
//! sends nothing outside its own namespaces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tcpscope::decode::TcpFlags;
use tcpscope::testing::{write_ethernet_pcap, Conversation, PacketBuilder};
use tcpscope_tests::{analyze, duckdb_dataset, duckdb_query, parquet_files, read_dataset, tcpscope_bin};

/// Every external command runs under `timeout` with this bound.
const COMMAND_LIMIT_SECS: &str = "60";

fn available(test: &str, tools: &[&str]) -> bool {
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).ok();
    if uid.as_deref() != Some("0") {
        eprintln!("SKIPPED {test}: needs root (network namespaces and AF_PACKET)");
        return false;
    }
    if !Command::new("ip").args(["netns", "list"]).output().map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("SKIPPED {test}: `ip netns` is unavailable (install iproute2)");
        return false;
    }
    for tool in tools {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().map(|o| o.status.success());
        if !found.unwrap_or(false) {
            eprintln!("SKIPPED {test}: `{tool}` is not installed (scripts/test.sh installs it)");
            return false;
        }
    }
    true
}

fn run(args: &[&str]) -> Output {
    let out = Command::new("timeout").arg(COMMAND_LIMIT_SECS).args(args).output().expect("running a command");
    assert!(
        out.status.success(),
        "`{}` failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two namespaces joined by a veth pair: `vc` in the client namespace, `vs` in the server one.
/// Dropping it kills every process in them and deletes them.
struct Lab {
    client: String,
    server: String,
    children: Vec<Child>,
    client_v4: String,
    server_v4: String,
    client_v6: String,
    server_v6: String,
}

impl Lab {
    /// `subnet` picks 198.18.<subnet>.0/24 and fd00:198:18::<subnet>1/2. Without `addresses`, the
    /// links carry no address at all (not even IPv6 link-local), so only injected frames cross.
    fn new(tag: &str, subnet: u8, addresses: bool) -> Lab {
        let base = format!("tcpscope-{tag}-{}", std::process::id());
        let lab = Lab {
            client: format!("{base}-c"),
            server: format!("{base}-s"),
            children: Vec::new(),
            client_v4: format!("198.18.{subnet}.1"),
            server_v4: format!("198.18.{subnet}.2"),
            client_v6: format!("fd00:198:18::{subnet}1"),
            server_v6: format!("fd00:198:18::{subnet}2"),
        };
        for ns in [&lab.client, &lab.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            run(&["ip", "netns", "add", ns]);
        }
        run(&["ip", "-n", &lab.client, "link", "add", "vc", "type", "veth", "peer", "name", "vs", "netns", &lab.server]);
        for (ns, dev) in [(&lab.client, "vc"), (&lab.server, "vs")] {
            if !addresses {
                run(&["ip", "-n", ns, "link", "set", dev, "addrgenmode", "none"]);
            }
            // Offloads off: the capture sees segments as they would be on a wire.
            let _ = Command::new("ip").args(["netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"]).output();
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        if addresses {
            run(&["ip", "-n", &lab.client, "addr", "add", &format!("{}/24", lab.client_v4), "dev", "vc"]);
            run(&["ip", "-n", &lab.server, "addr", "add", &format!("{}/24", lab.server_v4), "dev", "vs"]);
            run(&["ip", "-n", &lab.client, "addr", "add", &format!("{}/64", lab.client_v6), "dev", "vc", "nodad"]);
            run(&["ip", "-n", &lab.server, "addr", "add", &format!("{}/64", lab.server_v6), "dev", "vs", "nodad"]);
        }
        for (ns, dev) in [(&lab.client, "vc"), (&lab.server, "vs")] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        run(&all)
    }

    fn spawn(&mut self, ns: &str, args: &[&str], log: &Path) -> u32 {
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawning");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// A counter of the server-side veth.
    fn server_rx_packets(&self) -> u64 {
        let out = self.exec(&self.server, &["cat", "/sys/class/net/vs/statistics/rx_packets"]);
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("rx_packets")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.client, &self.server] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).output();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A running `tcpscope capture` inside the server namespace.
struct Capture {
    pid: u32,
    out: PathBuf,
    log: PathBuf,
}

impl Capture {
    fn start(lab: &mut Lab, dir: &Path, extra: &[&str]) -> Capture {
        let out = dir.join("capture");
        let log = dir.join("capture.log");
        let bin = tcpscope_bin();
        let mut args: Vec<String> = vec![bin.display().to_string(), "capture".into(), "-i".into(), "vs".into()];
        args.extend(["--out".into(), out.display().to_string(), "--no-pin".into(), "--stats-interval".into(), "1".into()]);
        args.extend(["--duration".into(), "90".into()]);
        if !extra.contains(&"--block-size") {
            args.extend(["--block-size".into(), "262144".into(), "--block-count".into(), "8".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = lab.server.clone();
        let pid = lab.spawn(&server, &refs, &log);
        // stats.json appears once every socket is open and bound.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !out.join("stats.json").exists() {
            if Instant::now() > deadline {
                panic!("capture did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            if lab.children.last_mut().and_then(|c| c.try_wait().ok()).flatten().is_some() {
                panic!("capture exited early: {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Capture { pid, out, log }
    }

    /// SIGINT, then wait for a clean exit; returns the final `stats.json`.
    fn stop(self, lab: &mut Lab) -> (PathBuf, serde_json::Value) {
        run(&["kill", "-INT", &self.pid.to_string()]);
        let child = lab.children.iter_mut().find(|c| c.id() == self.pid).expect("capture child");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting") {
                break status;
            }
            assert!(Instant::now() < deadline, "capture did not stop: {}", std::fs::read_to_string(&self.log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        eprintln!("--- capture log ---\n{log}");
        assert!(status.success(), "capture failed: {log}");
        let stats: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.out.join("stats.json")).expect("stats.json")).expect("stats json");
        eprintln!("--- stats.json ---\n{stats}");
        assert_eq!(stats["running"], false, "the final stats.json says the capture ended");
        (self.out, stats)
    }
}

fn n(stats: &serde_json::Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or_else(|| panic!("stats.json has no counter {key}: {stats}"))
}

fn count(sql: &str) -> u64 {
    duckdb_query(sql)[0][0].as_deref().unwrap_or("0").parse().expect("count")
}

fn wait_for_server(lab: &Lab, address: &str, port: u16) {
    let probe = format!(
        "import socket,sys,time\nfor _ in range(100):\n    try:\n        socket.create_connection(('{address}',{port}),1).close(); sys.exit(0)\n    except OSError: time.sleep(0.1)\nsys.exit(1)"
    );
    // Runs inside the server namespace, over its loopback: not on the captured veth.
    lab.exec(&lab.server, &["python3", "-c", &probe]);
}

fn per_kind(out: &Path) -> BTreeMap<String, u64> {
    if parquet_files(out, "events").is_empty() {
        return BTreeMap::new();
    }
    duckdb_query(&format!("SELECT kind, count(*) FROM {} GROUP BY kind ORDER BY kind", duckdb_dataset(out, "events")))
        .into_iter()
        .map(|r| (r[0].clone().unwrap_or_default(), r[1].as_deref().unwrap_or("0").parse().unwrap()))
        .collect()
}

#[test]
fn http_and_bulk_transfer_over_veth() {
    if !available("http_and_bulk_transfer_over_veth", &["curl", "python3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from the server namespace\n").unwrap();
    std::fs::write(www.join("bulk.bin"), vec![0x5a; 4 << 20]).unwrap(); // 4 MiB bulk transfer
    let mut lab = Lab::new("http", 1, true);
    let (v4, v6) = (lab.server_v4.clone(), lab.server_v6.clone());
    let server = lab.server.clone();
    let www_arg = www.display().to_string();
    lab.spawn(&server, &["python3", "-m", "http.server", "8000", "--bind", &v4, "--directory", &www_arg], &dir.path().join("http4.log"));
    lab.spawn(&server, &["python3", "-m", "http.server", "8001", "--bind", &v6, "--directory", &www_arg], &dir.path().join("http6.log"));
    wait_for_server(&lab, &v4, 8000);
    wait_for_server(&lab, &v6, 8001);

    let capture =
        Capture::start(&mut lab, dir.path(), &["--readers", "2", "--workers", "2", "--block-size", "262144", "--block-count", "64"]);
    let client = lab.client.clone();
    for _ in 0..3 {
        let o = lab.exec(&client, &["curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{v4}:8000/")]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
    }
    for _ in 0..2 {
        let o = lab.exec(&client, &["curl", "-sS", "-g", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://[{v6}]:8001/")]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
    }
    let o = lab.exec(&client, &["curl", "-sS", "--max-time", "30", "-o", "/dev/null", "-w", "%{size_download}", &format!("http://{v4}:8000/bulk.bin")]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), (4u64 << 20).to_string());
    // A refused connection: SYN answered by RST.
    let refused = Command::new("ip")
        .args(["netns", "exec", &client, "timeout", "10", "curl", "-sS", "--max-time", "5", &format!("http://{v4}:8999/")])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    std::thread::sleep(Duration::from_millis(500)); // let the last FINs and blocks reach the readers
    let (out, stats) = capture.stop(&mut lab);

    assert_eq!(n(&stats, "kernel_drops"), 0, "{stats}");
    assert_eq!(n(&stats, "queue_drops"), 0, "{stats}");
    assert_eq!(n(&stats, "packets_received"), n(&stats, "kernel_delivered"), "every packet in the rings was read");
    assert!(n(&stats, "bytes_received") > 4 << 20, "the 4 MiB transfer went through the ring: {stats}");
    assert_eq!(n(&stats, "undecodable"), 0);

    let flows = duckdb_dataset(&out, "flows");
    let web = format!("{flows} WHERE resp_p IN (8000, 8001) AND close_reason <> 'evicted'");
    assert_eq!(count(&format!("SELECT count(*) FROM {web} AND ip_version = 4 AND resp_p = 8000")), 4, "3 pages and 1 bulk download over IPv4");
    assert_eq!(count(&format!("SELECT count(*) FROM {web} AND ip_version = 6")), 2, "2 pages over IPv6");
    assert_eq!(count(&format!("SELECT count(*) FROM {web} AND conn_state = 'SF'")), 6, "every HTTP connection completed normally");
    assert_eq!(count(&format!("SELECT count(*) FROM {web} AND orig_h IN ('{}', '{}')", lab.client_v4, lab.client_v6)), 6, "the client is the originator");
    assert_eq!(count(&format!("SELECT count(*) FROM {web} AND resp_bytes >= {}", 4u64 << 20)), 1, "the bulk transfer's bytes");
    assert_eq!(count(&format!("SELECT count(*) FROM {flows} WHERE resp_p = 8999 AND conn_state = 'REJ'")), 1, "the refused connection");
    let sources = duckdb_query(&format!("SELECT DISTINCT source FROM {flows}"));
    assert_eq!(sources, vec![vec![Some("vs".to_owned())]], "the source column names the interface");

    let events = read_dataset(&out, "events");
    assert!(events.iter().map(|b| b.num_rows()).sum::<usize>() >= 1, "at least the refused connection is an event");
    assert_eq!(
        count(&format!("SELECT count(*) FROM {} WHERE kind = 'connection_refused' AND 8999 IN (src_port, dst_port)", duckdb_dataset(&out, "events"))),
        1
    );
    // Packet numbers are unique within the interface, as in a capture file: events that share a
    // number (one packet may raise several, e.g. a zero window and the stall it starts) describe
    // the same packet: one timestamp, one flow, one direction, one sequence number.
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM (SELECT packet_number FROM {} WHERE packet_number IS NOT NULL GROUP BY packet_number \
             HAVING count(DISTINCT (ts, flow_id, src_ip, src_port, seq)) > 1)",
            duckdb_dataset(&out, "events")
        )),
        0,
        "no packet number names two different packets"
    );
    assert!(
        count(&format!("SELECT count(DISTINCT packet_number) FROM {} WHERE packet_number IS NOT NULL", duckdb_dataset(&out, "events"))) >= 1,
        "packet events carry their packet number"
    );
}

/// A capture built by the project's own builder: a conversation with retransmissions, duplicate
/// ACKs, a zero window and a reset, one with a VLAN tag, and a refused connection; gaps of tens of
/// milliseconds so that replay jitter does not change any decision.
fn replay_scenario(subnet: u8) -> Vec<(u64, Vec<u8>)> {
    let ms = 1_000_000u64;
    let t0 = 1_700_000_000_000 * ms;
    let client = format!("198.18.{subnet}.10:40000");
    let server = format!("198.18.{subnet}.20:80");
    let mut c = Conversation::new(&client, &server, 1000, 5000);
    c.handshake(t0, 20 * ms);
    c.client_data(t0 + 60 * ms, 300);
    c.server_ack(t0 + 80 * ms);
    c.server_data(t0 + 100 * ms, 1000);
    // The client's ACK is lost; the server retransmits the same segment after a timeout.
    let retransmit = c.from_server().seq(c.server_next() - 1000).flags(TcpFlags::ACK | TcpFlags::PSH).payload_len(1000).window(512);
    c.push(t0 + 400 * ms, retransmit);
    c.client_ack(t0 + 420 * ms);
    // A gap: the server sends two segments, the first is not captured.
    let next = c.server_next();
    let later = c.from_server().seq(next.wrapping_add(500)).flags(TcpFlags::ACK).payload_len(500).window(512);
    c.push(t0 + 500 * ms, later);
    for i in 0..3 {
        let dup = c.from_client().flags(TcpFlags::ACK).window(512);
        c.push(t0 + (520 + 20 * i) * ms, dup);
    }
    // Zero window from the client, then a window update.
    let zero = c.from_client().flags(TcpFlags::ACK).window(0);
    c.push(t0 + 600 * ms, zero);
    let open = c.from_client().flags(TcpFlags::ACK).window(512);
    c.push(t0 + 700 * ms, open);
    c.server_reset(t0 + 800 * ms);
    let mut frames = c.frames.clone();

    // The same kind of exchange inside VLAN 10 (the kernel strips the tag; tcpscope puts it back).
    let vc = format!("198.18.{subnet}.11:40001");
    let vs = format!("198.18.{subnet}.21:80");
    let mut v = Conversation::new(&vc, &vs, 7000, 9000);
    v.handshake(t0 + 50 * ms, 20 * ms);
    v.client_data(t0 + 150 * ms, 200);
    v.server_ack(t0 + 170 * ms);
    v.close(t0 + 300 * ms, 20 * ms);
    let tagged = rebuild_with_vlan(&v, 10);
    frames.extend(tagged);

    // A refused connection.
    let syn = PacketBuilder::v4(&format!("198.18.{subnet}.12:40002"), &format!("198.18.{subnet}.22:443")).seq(1).flags(TcpFlags::SYN);
    frames.push((t0 + 900 * ms, syn.ethernet()));
    let rst = PacketBuilder::v4(&format!("198.18.{subnet}.22:443"), &format!("198.18.{subnet}.12:40002")).ack(2).flags(TcpFlags::RST | TcpFlags::ACK);
    frames.push((t0 + 920 * ms, rst.ethernet()));
    frames
}

/// The frames of `conversation` with an 802.1Q tag inserted after the MAC addresses.
fn rebuild_with_vlan(conversation: &Conversation, vlan: u16) -> Vec<(u64, Vec<u8>)> {
    conversation
        .frames
        .iter()
        .map(|(t, f)| {
            let mut tagged = f[..12].to_vec();
            tagged.extend_from_slice(&[0x81, 0x00]);
            tagged.extend_from_slice(&vlan.to_be_bytes());
            tagged.extend_from_slice(&f[12..]);
            (*t, tagged)
        })
        .collect()
}

#[test]
fn replayed_capture_gives_the_same_events_as_analyze() {
    if !available("replayed_capture_gives_the_same_events_as_analyze", &["tcpreplay", "python3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("scenario.pcap");
    let frames = replay_scenario(2);
    write_ethernet_pcap(&pcap, &frames).unwrap();

    let offline = dir.path().join("offline");
    let a = analyze(&[&pcap], &offline, &[]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let expected = per_kind(&offline);
    assert!(!expected.is_empty(), "the scenario yields events offline");

    let mut lab = Lab::new("replay", 2, false);
    let rx_before = lab.server_rx_packets();
    let capture = Capture::start(&mut lab, dir.path(), &["--workers", "2", "--idle-timeout", "300"]);
    let client = lab.client.clone();
    // Original timing (about one second).
    let replay = lab.exec(&client, &["tcpreplay", "-i", "vc", &pcap.display().to_string()]);
    eprintln!("{}", String::from_utf8_lossy(&replay.stdout));
    std::thread::sleep(Duration::from_millis(300));
    let (out, stats) = capture.stop(&mut lab);
    let arrived = lab.server_rx_packets() - rx_before;

    assert_eq!(arrived, frames.len() as u64, "every replayed frame reached the veth");
    assert_eq!(n(&stats, "packets_received"), frames.len() as u64, "{stats}");
    assert_eq!(n(&stats, "kernel_drops"), 0);
    assert_eq!(per_kind(&out), expected, "capture and analyze of the same packets give the same events");

    let flows = |root: &Path, filter: &str| count(&format!("SELECT count(*) FROM {} WHERE {filter}", duckdb_dataset(root, "flows")));
    assert_eq!(flows(&out, "true"), flows(&offline, "true"));
    assert_eq!(flows(&out, "vlan = 10"), 1, "the VLAN tag stripped by the kernel is restored");
    assert_eq!(flows(&offline, "vlan = 10"), 1);
    let states = |root: &Path| duckdb_query(&format!("SELECT conn_state, history FROM {} ORDER BY 1, 2", duckdb_dataset(root, "flows")));
    assert_eq!(states(&out), states(&offline));
}

#[test]
fn fanout_readers_never_split_a_connection() {
    if !available("fanout_readers_never_split_a_connection", &["python3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), vec![b'x'; 20_000]).unwrap();
    let mut lab = Lab::new("fanout", 3, true);
    let v4 = lab.server_v4.clone();
    let server = lab.server.clone();
    let www_arg = www.display().to_string();
    lab.spawn(&server, &["python3", "-m", "http.server", "8000", "--bind", &v4, "--directory", &www_arg], &dir.path().join("http.log"));
    wait_for_server(&lab, &v4, 8000);

    let capture = Capture::start(&mut lab, dir.path(), &["--readers", "4", "--workers", "3"]);
    let connections = 80;
    let client_script = format!(
        "import urllib.request\nfor i in range({connections}):\n    urllib.request.urlopen('http://{v4}:8000/', timeout=10).read()\n"
    );
    let client = lab.client.clone();
    lab.exec(&client, &["python3", "-c", &client_script]);
    std::thread::sleep(Duration::from_millis(500));
    let (out, stats) = capture.stop(&mut lab);

    let readers = stats["readers"].as_array().expect("readers");
    assert_eq!(readers.len(), 4);
    let busy = readers.iter().filter(|r| r["packets"].as_u64().unwrap_or(0) > 0).count();
    assert!(busy >= 2, "the fanout group spread connections over several readers: {stats}");
    assert_eq!(n(&stats, "kernel_drops") + n(&stats, "queue_drops"), 0, "{stats}");

    let flows = duckdb_dataset(&out, "flows");
    let web = format!("{flows} WHERE resp_p = 8000");
    // One row per connection (a split connection would show up as two flows of one 4-tuple,
    // one of them starting mid-stream), each complete and in order.
    assert_eq!(count(&format!("SELECT count(*) FROM {web}")), connections);
    assert_eq!(count(&format!("SELECT count(DISTINCT (orig_h, orig_p, resp_h, resp_p)) FROM {web}")), connections);
    assert_eq!(count(&format!("SELECT count(*) FROM {web} AND conn_state = 'SF' AND orig_h = '{}'", lab.client_v4)), connections);
    assert_eq!(count(&format!("SELECT count(*) FROM {web} AND history NOT LIKE 'S%'")), 0, "no connection starts mid-stream");
    let events = duckdb_dataset(&out, "events");
    if !parquet_files(&out, "events").is_empty() {
        assert_eq!(
            count(&format!("SELECT count(*) FROM {events} WHERE kind IN ('midstream_start', 'out_of_order', 'previous_segment_not_captured', 'acked_unseen_segment')")),
            0,
            "no reordering between readers"
        );
    }
}

/// 20,000 small segments of 100 one-way flows in 198.18.<subnet>.0/24; returns the frame count.
fn write_flood(path: &Path, subnet: u8) -> u64 {
    let mut frames = Vec::new();
    for flow in 0..100u32 {
        let client = format!("198.18.{subnet}.{}:{}", 10 + flow % 200, 20000 + flow);
        for i in 0..200u32 {
            let p = PacketBuilder::v4(&client, &format!("198.18.{subnet}.250:80")).seq(1 + i * 10).ack(1).flags(TcpFlags::ACK).payload_len(10);
            frames.push((u64::from(flow * 200 + i) * 1000, p.ethernet()));
        }
    }
    write_ethernet_pcap(path, &frames).unwrap();
    frames.len() as u64
}

#[test]
fn top_speed_replay_loses_nothing() {
    if !available("top_speed_replay_loses_nothing", &["tcpreplay"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flood.pcap");
    let sent = write_flood(&pcap, 6);
    let mut lab = Lab::new("topspeed", 6, false);
    // The default ring (128 MiB) and two readers in one fanout group.
    let capture = Capture::start(&mut lab, dir.path(), &["--block-size", "1048576", "--block-count", "128", "--readers", "2"]);
    let client = lab.client.clone();
    let replay = lab.exec(&client, &["tcpreplay", "-K", "--topspeed", "-i", "vc", &pcap.display().to_string()]);
    eprintln!("{}", String::from_utf8_lossy(&replay.stdout));
    std::thread::sleep(Duration::from_millis(500));
    let (out, stats) = capture.stop(&mut lab);
    assert_eq!(n(&stats, "kernel_drops"), 0, "{stats}");
    assert_eq!(n(&stats, "packets_received"), sent, "every packet sent was received: {stats}");
    assert_eq!(n(&stats, "segments_analysed") + n(&stats, "queue_drops"), sent);
    let pkts = count(&format!("SELECT sum(orig_pkts + resp_pkts) FROM {}", duckdb_dataset(&out, "flows")));
    assert_eq!(pkts + n(&stats, "queue_drops"), sent, "every analysed packet is in a flow row");
}

#[test]
fn packet_limit_stops_the_capture_exactly() {
    if !available("packet_limit_stops_the_capture_exactly", &["tcpreplay"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flood.pcap");
    let sent = write_flood(&pcap, 7);
    let mut lab = Lab::new("limit", 7, false);
    let capture = Capture::start(&mut lab, dir.path(), &["--packets", "5000", "--readers", "2"]);
    let client = lab.client.clone();
    lab.exec(&client, &["tcpreplay", "-K", "--topspeed", "-i", "vc", &pcap.display().to_string()]);
    // The capture ends by itself.
    let child = lab.children.iter_mut().find(|c| c.id() == capture.pid).expect("capture child");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the capture did not stop at its packet limit");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&capture.log).unwrap_or_default();
    assert!(status.success() && log.contains("packet limit reached"), "{log}");
    let stats: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(capture.out.join("stats.json")).unwrap()).unwrap();
    assert_eq!(n(&stats, "packets_received"), 5000, "{stats}");
    assert_eq!(n(&stats, "packets_received") + n(&stats, "discarded_after_limit"), n(&stats, "kernel_delivered"), "{stats}");
    assert!(n(&stats, "kernel_packets") <= sent);
}

#[test]
fn overload_drops_add_up() {
    if !available("overload_drops_add_up", &["tcpreplay"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flood.pcap");
    let sent = write_flood(&pcap, 4);

    let mut lab = Lab::new("overload", 4, false);
    let rx_before = lab.server_rx_packets();
    // A tiny ring (2 x 64 KiB) and a reader that sleeps 30 ms after every block: the kernel must drop.
    let capture = Capture::start(
        &mut lab,
        dir.path(),
        &["--block-size", "65536", "--block-count", "2", "--debug-reader-delay", "30", "--workers", "1", "tcp and net 198.18.4.0/24"],
    );
    let client = lab.client.clone();
    let replay = lab.exec(&client, &["tcpreplay", "-K", "--topspeed", "-i", "vc", &pcap.display().to_string()]);
    eprintln!("{}", String::from_utf8_lossy(&replay.stdout));
    std::thread::sleep(Duration::from_millis(500));
    let (_out, stats) = capture.stop(&mut lab);
    let arrived = lab.server_rx_packets() - rx_before;
    eprintln!("sent {sent}, arrived {arrived}, stats {stats}");

    assert_eq!(arrived, sent, "every frame reached the veth");
    assert!(n(&stats, "kernel_drops") > 0, "the overloaded ring dropped: {stats}");
    assert_eq!(n(&stats, "kernel_packets"), sent, "the kernel saw every frame pass the filter");
    assert_eq!(n(&stats, "packets_received") + n(&stats, "kernel_drops"), sent, "delivered + dropped = sent");
    assert_eq!(n(&stats, "kernel_delivered"), n(&stats, "packets_received"));
    assert_eq!(
        n(&stats, "packets_received"),
        n(&stats, "tcp_segments") + n(&stats, "not_tcp") + n(&stats, "fragments") + n(&stats, "undecodable")
    );
    assert_eq!(n(&stats, "tcp_segments"), n(&stats, "segments_analysed") + n(&stats, "queue_drops"), "every segment analysed or counted as a queue drop");
}

/// An established connection with some data, left open.
fn open_connection(client: &str, server: &str, t0: u64) -> Vec<(u64, Vec<u8>)> {
    let ms = 1_000_000u64;
    let mut c = Conversation::new(client, server, 100, 900);
    c.handshake(t0, 5 * ms);
    c.client_data(t0 + 20 * ms, 100);
    c.server_ack(t0 + 30 * ms);
    c.frames
}

#[test]
fn quiet_link_expires_idle_flows_and_shutdown_flushes_the_rest() {
    if !available("quiet_link_expires_idle_flows_and_shutdown_flushes_the_rest", &["tcpreplay"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The capture runs as `nobody` after opening its socket: the output folder must be theirs to write.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let early = dir.path().join("early.pcap");
    let late = dir.path().join("late.pcap");
    write_ethernet_pcap(&early, &open_connection("198.18.5.10:41000", "198.18.5.20:80", 1_000_000_000)).unwrap();
    write_ethernet_pcap(&late, &open_connection("198.18.5.11:41001", "198.18.5.20:80", 1_000_000_000)).unwrap();

    let mut lab = Lab::new("idle", 5, false);
    let capture = Capture::start(&mut lab, dir.path(), &["--idle-timeout", "2", "--user", "nobody"]);
    let client = lab.client.clone();
    lab.exec(&client, &["tcpreplay", "-i", "vc", &early.display().to_string()]);
    // No packet for 4.5 s: only the capture driver's ticks can move packet time past the timeout.
    std::thread::sleep(Duration::from_millis(4500));
    lab.exec(&client, &["tcpreplay", "-i", "vc", &late.display().to_string()]);
    std::thread::sleep(Duration::from_millis(200));
    let (out, stats) = capture.stop(&mut lab);
    assert_eq!(n(&stats, "packets_received"), 10, "{stats}");

    let rows = duckdb_query(&format!("SELECT orig_p, close_reason FROM {} ORDER BY orig_p", duckdb_dataset(&out, "flows")));
    assert_eq!(
        rows,
        vec![
            vec![Some("41000".to_owned()), Some("idle_timeout".to_owned())],
            vec![Some("41001".to_owned()), Some("shutdown".to_owned())],
        ]
    );
    // Written by the unprivileged user.
    use std::os::unix::fs::MetadataExt;
    let file = &parquet_files(&out, "flows")[0];
    assert_eq!(std::fs::metadata(file).unwrap().uid(), 65534, "{} is owned by nobody", file.display());
}

#[test]
fn setup_errors_are_clear_and_come_first() {
    if !available("setup_errors_are_clear_and_come_first", &["setpriv"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let bin = tcpscope_bin();
    let o = |args: &[&str]| Command::new("timeout").arg("30").arg(&bin).args(args).output().unwrap();

    // A filter that does not compile: an error before any socket is opened or file written.
    let r = o(&["capture", "-i", "lo", "--out", out.to_str().unwrap(), "tcp", "port", "eighty"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("does not compile") && err.contains("tcp port eighty"), "{err}");
    assert!(!out.exists(), "nothing was written");

    // No such interface.
    let r = o(&["capture", "-i", "tcpscope-none0", "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("no such network interface"), "{err}");

    // Without CAP_NET_RAW.
    let r = Command::new("timeout")
        .args(["30", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(&bin)
        .args(["capture", "-i", "lo", "--out", "/nonexistent/out"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("CAP_NET_RAW"), "{err}");
}

#[test]
fn plugins_run_on_live_traffic() {
    if !available("plugins_run_on_live_traffic", &["python3"]) {
        return;
    }
    // The port-scan detector, built like the plugin tests build it.
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(tcpscope_tests::workspace_root())
        .args(["build", "-q", "-p", "tcpscope-plugin-port-scan"])
        .args(if cfg!(debug_assertions) { vec![] } else { vec!["--release"] })
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building the port-scan plugin failed");
    let library = tcpscope_tests::target_dir()
        .join(if cfg!(debug_assertions) { "debug" } else { "release" })
        .join(format!("{}tcpscope_plugin_port_scan{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));

    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::new("plugin", 8, true);
    let library_arg = library.display().to_string();
    // Two interfaces: the veth and the server namespace's loopback.
    let capture = Capture::start(&mut lab, dir.path(), &["--plugin", &library_arg, "--workers", "2", "-i", "lo"]);
    // 20 closed ports of the server: each SYN is answered by RST.
    let scan = format!(
        "import socket\nfor port in range(9000, 9020):\n    try:\n        socket.create_connection(('{}', port), 1).close()\n    except OSError:\n        pass\n",
        lab.server_v4
    );
    let client = lab.client.clone();
    lab.exec(&client, &["python3", "-c", &scan]);
    // One refused connection inside the server namespace, over its loopback.
    let local = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9100), 1)\nexcept OSError:\n    pass\n";
    let server = lab.server.clone();
    lab.exec(&server, &["python3", "-c", local]);
    std::thread::sleep(Duration::from_millis(300));
    let (out, stats) = capture.stop(&mut lab);
    assert_eq!(stats["interfaces"], serde_json::json!(["vs", "lo"]));
    let events = duckdb_dataset(&out, "events");
    assert_eq!(count(&format!("SELECT count(*) FROM {events} WHERE kind = 'connection_refused' AND source = 'vs'")), 20);
    assert_eq!(
        count(&format!("SELECT count(*) FROM {} WHERE source = 'lo' AND resp_p = 9100", duckdb_dataset(&out, "flows"))),
        1,
        "the loopback's connection, seen once (outgoing copies ignored)"
    );
    assert!(
        count(&format!("SELECT count(*) FROM {events} WHERE detector = 'port-scan'")) >= 1,
        "the plugin saw the scan: {:?}",
        duckdb_query(&format!("SELECT detector, kind, count(*) FROM {events} GROUP BY ALL"))
    );
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn interface_down_and_up_neither_spins_nor_stops_the_capture() {
    if !available("interface_down_and_up_neither_spins_nor_stops_the_capture", &["tcpreplay"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flood.pcap");
    let sent = write_flood(&pcap, 9);
    let mut lab = Lab::new("updown", 9, false);
    let capture = Capture::start(&mut lab, dir.path(), &[]);
    let server = lab.server.clone();
    lab.exec(&server, &["ip", "link", "set", "vs", "down"]);
    let before = cpu_seconds(capture.pid);
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_seconds(capture.pid) - before;
    assert!(spent < 0.5, "the capture spun while its interface was down ({spent} CPU s in 2 s)");
    lab.exec(&server, &["ip", "link", "set", "vs", "up"]);
    std::thread::sleep(Duration::from_millis(500));
    let client = lab.client.clone();
    lab.exec(&client, &["tcpreplay", "-K", "--topspeed", "-i", "vc", &pcap.display().to_string()]);
    std::thread::sleep(Duration::from_millis(500));
    let (_out, stats) = capture.stop(&mut lab);
    // Resumed: every packet sent after the interface came back is accounted for, received or
    // dropped by the kernel at a full ring (a loaded machine may drop some at top speed).
    let received = n(&stats, "packets_received");
    assert!(received > 0, "the capture resumed when the interface came back: {stats}");
    assert_eq!(received + n(&stats, "kernel_drops"), sent, "every packet sent is received or counted as dropped: {stats}");
}
