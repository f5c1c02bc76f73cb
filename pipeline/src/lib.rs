//! tcpscope: TCP troubleshooting at line rate.
//!
//! ```text
//!  pcap / pcapng file ─► reader: decode once, symmetric flow hash ─► bounded batch queues
//!      ─► workers (flow table ─► sans-IO TCP engine ─► plugins) ─► sink (Parquet, atomic rename)
//! ```
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod cli;
pub mod decode;
pub mod dispatch;
pub mod error;
pub mod flow;
#[cfg(target_os = "linux")]
pub mod live;
pub mod pipeline;
#[allow(unsafe_code)] // loading plugins: every block says why it is sound
pub mod plugin_host;
pub mod sink;
pub mod source;
pub mod stats;
pub mod tcp;
pub mod testing;
pub mod time;
pub mod worker;
