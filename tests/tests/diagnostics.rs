//! Connection diagnostics on real captures: corpus captures that show each story, and, where the
//! corpus has none, traffic recorded here between two network namespaces (root only).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tcpscope::tcp::{EngineConfig, Event, EventKind};

fn run(path: &Path, config: EngineConfig) -> Vec<Event> {
    tcpscope_tests::engine_over_capture(path, config)
        .events
        .into_iter()
        .filter(|e| EventKind::DIAGNOSTICS.iter().any(|k| e.is(*k)))
        .collect()
}

fn show(e: &Event) -> String {
    format!(
        "{} packet={:?} dir={:?} ref={:?} value_ns={:?} count={:?} {:?}",
        e.kind,
        e.packet_number,
        e.direction.map(|d| d.as_str()),
        e.ref_packet,
        e.value_ns,
        e.count,
        e.details
    )
}

fn detail<'a>(e: &'a Event, key: &str) -> Option<&'a str> {
    e.details.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn only(events: &[Event], kind: EventKind) -> Vec<&Event> {
    events.iter().filter(|e| e.is(kind)).collect()
}

fn corpus_capture(name: &str) -> Option<PathBuf> {
    let corpus = tcpscope_tests::corpus_dir(&format!("diagnostics on {name}"))?;
    Some(corpus.join("pcaps").join(name))
}

#[test]
fn connection_refused_on_rst_refused() {
    let Some(path) = corpus_capture("rst_refused.pcapng") else { return };
    let events = run(&path, EngineConfig::default());
    let refused = only(&events, EventKind::ConnectionRefused);
    assert_eq!(refused.len(), 1, "{events:#?}");
    let e = refused[0];
    assert_eq!((e.packet_number, e.ref_packet, e.count), (Some(2), Some(1), Some(1)));
    assert_eq!(e.value_ns, Some(1_316_000), "SYN → RST");
    assert!(only(&events, EventKind::ConnectionReset).is_empty(), "a refusal is not a reset");
}

#[test]
fn handshake_timeout_on_syn_unanswered_retrans() {
    let Some(path) = corpus_capture("syn_unanswered_retrans.pcapng") else { return };
    let events = run(&path, EngineConfig::default());
    let timeouts = only(&events, EventKind::HandshakeTimeout);
    assert_eq!(timeouts.len(), 1, "{:#?}", events.iter().map(show).collect::<Vec<_>>());
    let e = timeouts[0];
    assert_eq!(e.count, Some(3), "three SYNs");
    assert_eq!(e.ref_packet, Some(3), "the first SYN");
    assert_eq!(e.packet_number, None, "a story, not a packet");
    assert_eq!(detail(e, "intervals"), Some("0.004s,0.997s"));
}

#[test]
fn rto_backoff_on_retrans_rto_backoff() {
    let Some(path) = corpus_capture("retrans_rto_backoff.pcapng") else { return };
    let events = run(&path, EngineConfig::default());
    let backoff = only(&events, EventKind::RtoBackoff);
    assert_eq!(backoff.len(), 1, "{events:#?}");
    let e = backoff[0];
    assert_eq!(e.count, Some(5));
    assert_eq!(e.ref_packet, Some(1), "the original transmission");
    assert_eq!(detail(e, "intervals"), Some("0.206s,0.600s,1.200s,2.400s,4.805s"));
    assert_eq!(e.value_ns, Some(9_211_000_000));
    // The capture starts mid-stream.
    assert_eq!(only(&events, EventKind::MidstreamStart).len(), 1);
}

#[test]
fn zero_window_stall_on_corpus() {
    if let Some(path) = corpus_capture("zero_window_stall.pcapng") {
        let events = run(&path, EngineConfig::default());
        let stalls = only(&events, EventKind::ZeroWindowStall);
        assert_eq!(stalls.len(), 1, "{events:#?}");
        assert_eq!(stalls[0].ref_packet, Some(2));
        assert_eq!(stalls[0].value_ns, Some(23_731_524_000));
        assert_eq!(detail(stalls[0], "ended"), Some("flow_end"));
    }
    if let Some(path) = corpus_capture("zero_window_recovery.pcapng") {
        let events = run(&path, EngineConfig::default());
        let stalls = only(&events, EventKind::ZeroWindowStall);
        assert_eq!(stalls.len(), 1, "{events:#?}");
        assert_eq!((stalls[0].packet_number, stalls[0].ref_packet), (Some(5), Some(4)));
        assert_eq!(stalls[0].value_ns, Some(10_005_000));
        assert_eq!(detail(stalls[0], "ended"), Some("window_opened"));
    }
}

#[test]
fn invalid_flags_on_corpus() {
    if let Some(path) = corpus_capture("all_flags_set.pcap") {
        let events = run(&path, EngineConfig::default());
        let invalid = only(&events, EventKind::InvalidFlags);
        assert_eq!(invalid.len(), 1, "{events:#?}");
        assert_eq!(detail(invalid[0], "combination"), Some("all"));
        assert!(only(&events, EventKind::ConnectionReset).is_empty(), "an all-flags packet is no reset story");
    }
    if let Some(path) = corpus_capture("fin_retrans_rst.pcap") {
        let events = run(&path, EngineConfig::default());
        let invalid = only(&events, EventKind::InvalidFlags);
        assert_eq!(invalid.len(), 1, "{events:#?}");
        assert_eq!(detail(invalid[0], "combination"), Some("fin_without_ack"));
        assert_eq!(invalid[0].packet_number, Some(2));
    }
}

#[test]
fn connection_reset_on_fin_retrans_rst() {
    let Some(path) = corpus_capture("fin_retrans_rst.pcap") else { return };
    let events = run(&path, EngineConfig::default());
    let resets = only(&events, EventKind::ConnectionReset);
    assert_eq!(resets.len(), 1, "{events:#?}");
    let e = resets[0];
    assert_eq!(e.packet_number, Some(5));
    assert_eq!(detail(e, "by"), Some("resp"));
    assert_eq!(detail(e, "fin_before"), Some("orig"));
    assert_eq!(e.value_ns, Some(303_278_000), "idle before the RST");
}

#[test]
fn midstream_start_on_corpus() {
    let Some(path) = corpus_capture("null_loopback_keepalive.pcap") else { return };
    let events = run(&path, EngineConfig::default());
    let mid = only(&events, EventKind::MidstreamStart);
    assert_eq!(mid.len(), 1, "{events:#?}");
    assert_eq!(mid[0].packet_number, Some(1));
    // A capture whose first packet is the SYN/ACK saw the handshake: not mid-stream.
    if let Some(path) = corpus_capture("midstream_missing_syn.pcap") {
        assert!(only(&run(&path, EngineConfig::default()), EventKind::MidstreamStart).is_empty());
    }
}

#[test]
fn half_open_rst_answers_data_on_keepalive_smb2() {
    let Some(path) = corpus_capture("keepalive_smb2.pcap") else { return };
    let events = run(&path, EngineConfig::default());
    let half = only(&events, EventKind::HalfOpen);
    assert!(!half.is_empty(), "{events:#?}");
    assert!(half.iter().all(|e| detail(e, "reason") == Some("rst_answers_data")));
    let e = half[0];
    assert_eq!((e.packet_number, e.ref_packet), (Some(214), Some(210)));
}

/// `DIAG_DUMP=a.pcap,b.pcapng` prints the diagnostics of those corpus captures.
#[test]
fn diagnostics_dump() {
    let Ok(names) = std::env::var("DIAG_DUMP") else { return };
    let Some(corpus) = tcpscope_tests::corpus_dir("diagnostics dump") else { return };
    for name in names.split(',') {
        println!("== {name}");
        for e in run(&corpus.join("pcaps").join(name), EngineConfig::default()) {
            println!("  {}", show(&e));
        }
    }
}

// ---- Recorded traffic: two network namespaces joined by a veth pair ------------------------

use tcpscope_tests::{sh, NamespaceLab as Lab};

const SERVER: &str = r#"
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.2", 8080))
s.listen(8)
conns = []
for _ in range(2):
    c, _ = s.accept()
    c.sendall(c.recv(100))
    conns.append(c)
time.sleep(30)
"#;

/// Connection A probes with keep-alives (1 s idle, 1 s apart, 3 probes); connection B sends data.
/// Once the parent has cut the server's way back, A's probes and B's retransmissions go
/// unanswered until the kernel gives up (A: RST after 3 probes; B: user timeout).
const CLIENT: &str = r#"
import socket, sys, time
for attempt in range(50):  # the listener may still be starting
    try:
        a = socket.create_connection(("198.18.0.2", 8080))
        break
    except ConnectionRefusedError:
        time.sleep(0.1)
a.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
a.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
a.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
a.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
a.sendall(b"hello a"); a.recv(100)
b = socket.create_connection(("198.18.0.2", 8080))
b.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 3500)
b.sendall(b"hello b"); b.recv(100)
print("ready", flush=True)
sys.stdin.readline()
b.sendall(b"x" * 100)
for sock in (a, b):
    sock.settimeout(10)
    try:
        sock.recv(100)
    except OSError as e:
        print("closed:", e, flush=True)
"#;

/// Records the keep-alive-timeout and half-open stories between two namespaces.
fn record_silent_peer(dir: &Path) -> Option<(PathBuf, Lab)> {
    let (mut lab, pair) = Lab::veth_pair("d", &["tcpdump", "python3"])?;
    let (client_ns, server_ns) = (pair.client_ns.clone(), pair.server_ns.clone());
    let veth_c = pair.client_dev.as_str();
    let capture = dir.join("silent_peer.pcap");
    let mut tcpdump = Command::new("ip")
        .args(["netns", "exec", &client_ns, "tcpdump", "-i", veth_c, "-U", "-n", "-c", "200", "-w"])
        .arg(&capture)
        .arg("tcp")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    // tcpdump says "listening on …" once its socket is open: only then may traffic start.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stderr = tcpdump.stderr.take().expect("tcpdump stderr");
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = ready_tx.send(());
            }
        }
    });
    lab.children.push(tcpdump);
    ready_rx.recv_timeout(Duration::from_secs(10)).expect("tcpdump started listening");
    let server = Command::new("ip")
        .args(["netns", "exec", &server_ns, "python3", "-c", SERVER])
        .stdout(Stdio::null())
        .spawn()
        .expect("server");
    lab.children.push(server);
    std::thread::sleep(Duration::from_millis(500)); // the listener binds
    let mut client = Command::new("ip")
        .args(["netns", "exec", &client_ns, "timeout", "20", "python3", "-c", CLIENT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client");
    let mut out = client.stdout.take().expect("client stdout");
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut ready).expect("client ready");
    assert_eq!(&ready, b"ready\n");
    // The server's packets to the client now vanish in its routing table.
    sh(&["ip", "-n", &server_ns, "route", "add", "blackhole", "198.18.0.1/32"]);
    std::io::Write::write_all(client.stdin.as_mut().expect("stdin"), b"go\n").expect("go");
    let started = Instant::now();
    while client.try_wait().expect("client").is_none() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = client.kill();
    let _ = client.wait();
    std::thread::sleep(Duration::from_millis(500)); // the last RST reaches the capture
    Some((capture, lab))
}

#[test]
fn keep_alive_timeout_and_half_open_recorded_in_namespaces() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some((capture, lab)) = record_silent_peer(tmp.path()) else { return };
    drop(lab); // stops tcpdump (its packets were written unbuffered) and removes the namespaces
    let mut config = EngineConfig::default();
    config.diagnostics.half_open_ns = 1_500_000_000;
    let events = run(&capture, config);
    let shown: Vec<String> = events.iter().map(show).collect();
    println!("recorded capture's diagnostics:\n  {}", shown.join("\n  "));

    let ka = only(&events, EventKind::KeepAliveTimeout);
    assert_eq!(ka.len(), 1, "{shown:#?}");
    assert!(ka[0].count.unwrap_or(0) >= 3, "three unanswered keep-alives: {shown:#?}");
    assert_eq!(detail(ka[0], "closed_by"), Some("rst"), "the prober resets: {shown:#?}");
    assert_eq!(ka[0].direction.map(|d| d.as_str()), Some("orig"));

    let half = only(&events, EventKind::HalfOpen);
    assert!(!half.is_empty(), "{shown:#?}");
    assert!(half.iter().all(|e| detail(e, "reason") == Some("peer_silent") && detail(e, "silent_side") == Some("resp")));

    let backoff = only(&events, EventKind::RtoBackoff);
    assert!(backoff.iter().any(|e| e.count.unwrap_or(0) >= 2), "{shown:#?}");
}
