//! The Parquet sink: rows → Arrow record batches → ZSTD Parquet files, Hive-partitioned by packet
//! time (`<out>/<dataset>/date=YYYY-MM-DD/hour=HH/`), written in `<out>/.staging/` and published by
//! an atomic rename once closed, so a reader's glob never sees a half-written file.

pub mod schema;

use crate::error::SinkError;
use crate::tcp::{Event, FlowRecord};
use crate::time::Timestamp;
use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::metadata::KeyValue;
use parquet::schema::types::ColumnPath;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The two datasets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dataset {
    /// `<out>/events`.
    Events,
    /// `<out>/flows`.
    Flows,
}

impl Dataset {
    /// Folder name.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::Events => "events",
            Dataset::Flows => "flows",
        }
    }
}

/// Default [`SinkConfig::batch_rows`]. Each record batch is built, split into levels and
/// appended to the row group in progress in one go, and those buffers are freed right after:
/// 2,048 rows (about 0.45 MB of rows plus as much again in arrays and levels) left the sink
/// thread's malloc arena 1.6 MB larger at the peak of a ten-times-longer capture than 1,024 rows
/// do, for no measurable speed. Row groups still close on their memory (`ROW_GROUP_MEMORY`).
pub const BATCH_ROWS: usize = 1_024;

/// Sink settings.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    /// Output root.
    pub out_dir: PathBuf,
    /// The `sensor` column.
    pub sensor: String,
    /// Names of the sources, by `source_index`.
    pub sources: Vec<String>,
    /// Rows buffered per partition before a record batch is written.
    pub batch_rows: usize,
    /// A file is closed and published after this many rows.
    pub max_rows_per_file: usize,
    /// A file is closed and published when packet time is this far past its first row.
    pub max_file_age_ns: u64,
    /// A unique tag of this run, part of every file name.
    pub run_tag: String,
}

impl SinkConfig {
    /// Settings with the documented defaults.
    pub fn new(out_dir: PathBuf, sensor: String, sources: Vec<String>, run_tag: String) -> Self {
        SinkConfig {
            out_dir,
            sensor,
            sources,
            batch_rows: BATCH_ROWS,
            max_rows_per_file: 2_000_000,
            max_file_age_ns: 60 * crate::time::NANOS_PER_SEC,
            run_tag,
        }
    }
}

/// What the sink did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkCounters {
    /// Event rows written.
    pub events_written: u64,
    /// Flow rows written.
    pub flows_written: u64,
    /// Files published.
    pub files_published: u64,
    /// Leftover staging files removed at start.
    pub stale_staging_files_removed: u64,
}

type PartitionKey = (Dataset, i32, u32, u32, u32);

/// Memory a row group in progress may hold before it is written out, as the writer counts it
/// ([`ArrowWriter::memory_size`]: buffered values and levels with their spare capacity,
/// dictionaries, statistics, bloom filters). Pages stay uncompressed until their row group closes
/// (closing them sooner would keep a zstd context of 150 KiB to 1.3 MiB alive per column), so this
/// is the bound on what the sink holds on long runs. The encoded-size estimate tested before
/// ([`ArrowWriter::in_progress_size`], 2 MB) is under half of it (1.14 MB against 2.46 MB for
/// 10,000 event rows), which let a row group grow to about 4.5 MB. 2 MiB is about 9,000 event
/// rows or 3,000 to 4,000 flow rows per row group.
const ROW_GROUP_MEMORY: usize = 2 << 20;

struct OpenFile {
    writer: ArrowWriter<File>,
    staging_path: PathBuf,
    final_path: PathBuf,
    rows: usize,
    first_ts: Timestamp,
}

#[derive(Default)]
struct Partition {
    events: Vec<Event>,
    flows: Vec<FlowRecord>,
    file: Option<OpenFile>,
}

/// Writes the datasets. Single-threaded: the pipeline runs it on its own thread.
pub struct ParquetSink {
    config: SinkConfig,
    staging_dir: PathBuf,
    partitions: BTreeMap<PartitionKey, Partition>,
    file_seq: u64,
    counters: SinkCounters,
    now: Timestamp,
    /// Packet time of the last rotation check.
    checked_rotation: Timestamp,
}

impl ParquetSink {
    /// Creates the output folders and clears leftovers of a crashed run from the staging folder.
    pub fn create(config: SinkConfig) -> Result<ParquetSink, SinkError> {
        let staging_dir = config.out_dir.join(".staging");
        for dir in [&config.out_dir, &staging_dir] {
            create_dir(dir)?;
        }
        let mut counters = SinkCounters::default();
        if let Ok(entries) = std::fs::read_dir(&staging_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "inprogress") && std::fs::remove_file(&path).is_ok() {
                    counters.stale_staging_files_removed += 1;
                }
            }
        }
        Ok(ParquetSink {
            config,
            staging_dir,
            partitions: BTreeMap::new(),
            file_seq: 0,
            counters,
            now: Timestamp::ZERO,
            checked_rotation: Timestamp::ZERO,
        })
    }

    /// Counters so far.
    pub fn counters(&self) -> SinkCounters {
        self.counters
    }

    /// Adds event rows.
    pub fn add_events(&mut self, events: impl IntoIterator<Item = Event>) -> Result<(), SinkError> {
        for e in events {
            self.observe(e.ts);
            let key = partition_key(Dataset::Events, e.ts);
            let p = self.partitions.entry(key).or_default();
            p.events.push(e);
            if p.events.len() >= self.config.batch_rows {
                self.write_buffered(key)?;
            }
            self.rotate_if_due()?;
        }
        Ok(())
    }

    /// Adds flow rows (partitioned by the flow's start).
    pub fn add_flows(&mut self, flows: impl IntoIterator<Item = FlowRecord>) -> Result<(), SinkError> {
        for f in flows {
            self.observe(f.ts_end);
            let key = partition_key(Dataset::Flows, f.ts);
            let p = self.partitions.entry(key).or_default();
            p.flows.push(f);
            if p.flows.len() >= self.config.batch_rows {
                self.write_buffered(key)?;
            }
            self.rotate_if_due()?;
        }
        Ok(())
    }

    /// Rows carry packet time: once a second of it, publish files past their age, so an offline
    /// run rotates like a live one and a crash loses at most one rotation period of output.
    fn rotate_if_due(&mut self) -> Result<(), SinkError> {
        if self.now.saturating_since(self.checked_rotation) >= crate::time::NANOS_PER_SEC {
            self.checked_rotation = self.now;
            self.advance_time(self.now)?;
        }
        Ok(())
    }

    fn observe(&mut self, ts: Timestamp) {
        if ts > self.now {
            self.now = ts;
        }
    }

    /// Packet time moved on: publish files older than the rotation age (a live link's quiet periods
    /// advance time too). Buffered rows of old partitions are written first.
    pub fn advance_time(&mut self, now: Timestamp) -> Result<(), SinkError> {
        self.observe(now);
        let age = self.config.max_file_age_ns;
        let due: Vec<PartitionKey> = self
            .partitions
            .iter()
            .filter(|(_, p)| {
                let first = p
                    .file
                    .as_ref()
                    .map(|f| f.first_ts)
                    .or_else(|| p.events.first().map(|e| e.ts))
                    .or_else(|| p.flows.first().map(|f| f.ts_end));
                first.is_some_and(|t| self.now.saturating_since(t) >= age)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.write_buffered(key)?;
            self.close_file(key)?;
            if let Some(p) = self.partitions.get(&key) {
                if p.file.is_none() && p.events.is_empty() && p.flows.is_empty() {
                    self.partitions.remove(&key);
                }
            }
        }
        Ok(())
    }

    /// Writes everything buffered and publishes every open file.
    pub fn finish(&mut self) -> Result<SinkCounters, SinkError> {
        let keys: Vec<PartitionKey> = self.partitions.keys().copied().collect();
        for key in keys {
            self.write_buffered(key)?;
            self.close_file(key)?;
        }
        self.partitions.clear();
        Ok(self.counters)
    }

    fn write_buffered(&mut self, key: PartitionKey) -> Result<(), SinkError> {
        let Some(p) = self.partitions.get_mut(&key) else { return Ok(()) };
        let (batch, first_ts, rows) = match key.0 {
            Dataset::Events if !p.events.is_empty() => {
                let b = schema::events_batch(&p.events, &self.config.sensor, &self.config.sources);
                let first = p.events[0].ts;
                let n = p.events.len();
                p.events.clear();
                (b, first, n)
            }
            Dataset::Flows if !p.flows.is_empty() => {
                let b = schema::flows_batch(&p.flows, &self.config.sensor, &self.config.sources);
                let first = p.flows[0].ts_end;
                let n = p.flows.len();
                p.flows.clear();
                (b, first, n)
            }
            _ => return Ok(()),
        };
        let batch = batch.map_err(|e| SinkError::Parquet { path: self.staging_dir.clone(), message: e.to_string() })?;
        self.write_batch(key, &batch, first_ts, rows)
    }

    fn write_batch(&mut self, key: PartitionKey, batch: &RecordBatch, first_ts: Timestamp, rows: usize) -> Result<(), SinkError> {
        if self.partitions.get(&key).is_some_and(|p| p.file.is_none()) {
            let file = self.open_file(key, first_ts)?;
            if let Some(p) = self.partitions.get_mut(&key) {
                p.file = Some(file);
            }
        }
        let Some(open) = self.partitions.get_mut(&key).and_then(|p| p.file.as_mut()) else { return Ok(()) };
        open.writer
            .write(batch)
            .map_err(|e| SinkError::Parquet { path: open.staging_path.clone(), message: e.to_string() })?;
        // Close the row group once it holds a few MiB: memory stays flat however many rows a
        // long run produces, and readers still get row groups worth pruning.
        if open.writer.memory_size() > ROW_GROUP_MEMORY {
            open.writer
                .flush()
                .map_err(|e| SinkError::Parquet { path: open.staging_path.clone(), message: e.to_string() })?;
        }
        open.rows += rows;
        match key.0 {
            Dataset::Events => self.counters.events_written += rows as u64,
            Dataset::Flows => self.counters.flows_written += rows as u64,
        }
        if open.rows >= self.config.max_rows_per_file {
            self.close_file(key)?;
        }
        Ok(())
    }

    fn open_file(&mut self, key: PartitionKey, first_ts: Timestamp) -> Result<OpenFile, SinkError> {
        let (dataset, year, month, day, hour) = key;
        self.file_seq += 1;
        let name = format!(
            "{}_{}_{:04}{:02}{:02}T{:02}_{}_{:05}.parquet",
            sanitize(&self.config.sensor),
            dataset.as_str(),
            year,
            month,
            day,
            hour,
            self.config.run_tag,
            self.file_seq
        );
        let partition_dir = self
            .config
            .out_dir
            .join(dataset.as_str())
            .join(format!("date={year:04}-{month:02}-{day:02}"))
            .join(format!("hour={hour:02}"));
        let staging_path = self.staging_dir.join(format!("{name}.inprogress"));
        let file = create_file(&staging_path)?;
        let schema = match dataset {
            Dataset::Events => schema::events_schema(),
            Dataset::Flows => schema::flows_schema(),
        };
        let writer = ArrowWriter::try_new(file, schema, Some(writer_properties(dataset)))
            .map_err(|e| SinkError::Parquet { path: staging_path.clone(), message: e.to_string() })?;
        Ok(OpenFile { writer, staging_path, final_path: partition_dir.join(name), rows: 0, first_ts })
    }

    fn close_file(&mut self, key: PartitionKey) -> Result<(), SinkError> {
        let Some(open) = self.partitions.get_mut(&key).and_then(|p| p.file.take()) else { return Ok(()) };
        let OpenFile { writer, staging_path, final_path, .. } = open;
        let file = writer
            .into_inner()
            .map_err(|e| SinkError::Parquet { path: staging_path.clone(), message: e.to_string() })?;
        file.sync_all().map_err(|source| SinkError::Io { path: staging_path.clone(), source })?;
        drop(file);
        let dir = final_path.parent().unwrap_or(Path::new("."));
        create_dir(dir)?;
        std::fs::rename(&staging_path, &final_path).map_err(|source| SinkError::Io { path: final_path.clone(), source })?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        self.counters.files_published += 1;
        Ok(())
    }
}

fn partition_key(dataset: Dataset, ts: Timestamp) -> PartitionKey {
    let (y, m, d, h) = ts.civil_date_hour();
    (dataset, y, m, d, h)
}

fn writer_properties(dataset: Dataset) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        // Dictionary pages are kept per column until the row group closes: allow them only where
        // values repeat (names, kinds, states), so memory stays bounded on wide, unique rows.
        .set_dictionary_enabled(false)
        .set_dictionary_page_size_limit(256 * 1024)
        .set_max_row_group_row_count(Some(32 * 1024))
        .set_max_row_group_bytes(Some(64 << 20))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("tcpscope.schema_version".to_owned(), schema::SCHEMA_VERSION.to_owned()),
            KeyValue::new("tcpscope.dataset".to_owned(), dataset.as_str().to_owned()),
            KeyValue::new("tcpscope.version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        ]));
    let dictionary_columns: &[&str] = match dataset {
        Dataset::Events => &["sensor", "source", "detector", "kind", "severity", "direction"],
        Dataset::Flows => &["sensor", "source", "conn_state", "history", "close_reason"],
    };
    for c in dictionary_columns {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), true);
    }
    let bloom_columns: &[&str] = match dataset {
        Dataset::Events => &["src_ip", "dst_ip"],
        Dataset::Flows => &["orig_h", "resp_h", "community_id"],
    };
    for c in bloom_columns {
        let path = ColumnPath::from(*c);
        b = b
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_fpp(path, 0.01);
    }
    b.build()
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

fn create_dir(dir: &Path) -> Result<(), SinkError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|source| SinkError::Io { path: dir.to_owned(), source })
}

fn create_file(path: &Path) -> Result<File, SinkError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| SinkError::Io { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, LinkType, TcpFlags};
    use crate::tcp::EventKind;
    use crate::testing::PacketBuilder;

    fn event_at(secs: u64) -> Event {
        let f = PacketBuilder::v4("198.18.0.1:1000", "198.18.0.2:80").flags(TcpFlags::SYN).ethernet();
        let seg = decode(LinkType::Ethernet, &f, Timestamp::from_secs_nanos(1_793_534_400 + secs, 0), secs + 1, 0).unwrap();
        Event::tcp_packet(EventKind::MidstreamStart, &seg, 7, crate::flow::Direction::Orig)
    }

    fn published(dir: &Path) -> Vec<PathBuf> {
        let mut v = Vec::new();
        let root = dir.join("events/date=2026-11-01/hour=12");
        if let Ok(rd) = std::fs::read_dir(root) {
            v.extend(rd.flatten().map(|e| e.path()));
        }
        v
    }

    #[test]
    fn files_rotate_on_packet_time_and_appear_only_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let config = SinkConfig::new(dir.path().to_owned(), "test".into(), vec!["x.pcap".into()], "t".into());
        let mut sink = ParquetSink::create(config).unwrap();
        sink.add_events((0..30).map(event_at)).unwrap();
        assert!(published(dir.path()).is_empty(), "nothing is visible before a file is complete");
        // 61 s of packet time later the first file is due and published, without any tick.
        sink.add_events((61..90).map(event_at)).unwrap();
        let first = published(dir.path());
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(std::fs::read_dir(dir.path().join(".staging")).unwrap().count(), 0);
        let counters = sink.finish().unwrap();
        assert_eq!(counters.events_written, 59);
        assert_eq!(counters.files_published, 2);
        assert_eq!(published(dir.path()).len(), 2);
        // Files are private to the owner and group.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn leftovers_in_staging_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".staging")).unwrap();
        std::fs::write(dir.path().join(".staging/old.parquet.inprogress"), b"PAR1 half").unwrap();
        let config = SinkConfig::new(dir.path().to_owned(), "test".into(), vec![], "t".into());
        let sink = ParquetSink::create(config).unwrap();
        assert_eq!(sink.counters().stale_staging_files_removed, 1);
        assert_eq!(std::fs::read_dir(dir.path().join(".staging")).unwrap().count(), 0);
    }
}
