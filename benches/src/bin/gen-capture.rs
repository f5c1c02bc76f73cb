//! Writes the project's generated captures: the shipped sample and the benchmark inputs.
//!
//! ```text
//! gen-capture sample OUT.pcap
//! gen-capture many-connections CONNECTIONS CONCURRENT OUT.pcap
//! gen-capture repeat TIMES IN.pcap OUT.pcap      (IN's records TIMES over, shifted in time)
//! gen-capture established CONNECTIONS OUT.pcap   (handshakes only: flows that stay open, idle)
//! ```

use std::path::Path;
use std::process::ExitCode;
use tcpscope::testing::{scenarios, write_ethernet_pcap};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["sample", out] => write_ethernet_pcap(Path::new(out), &scenarios::sample()),
        ["many-connections", n, concurrent, out] => match (n.parse::<usize>(), concurrent.parse::<usize>()) {
            (Ok(n), Ok(c)) => write_ethernet_pcap(Path::new(out), &scenarios::many_connections(n, c)),
            _ => Err(std::io::Error::other("CONNECTIONS and CONCURRENT must be numbers")),
        },
        ["established", n, out] => match n.parse::<u32>() {
            Ok(n) => scenarios::write_established(Path::new(out), n),
            Err(_) => Err(std::io::Error::other("CONNECTIONS must be a number")),
        },
        ["repeat", times, input, out] => match times.parse::<u32>() {
            Ok(t) => tcpscope_benches::repeat_capture(Path::new(input), Path::new(out), t),
            Err(_) => Err(std::io::Error::other("TIMES must be a number")),
        },
        _ => {
            eprintln!("usage: gen-capture sample OUT | many-connections N CONCURRENT OUT | established N OUT | repeat TIMES IN OUT");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-capture: {e}");
            ExitCode::FAILURE
        }
    }
}
