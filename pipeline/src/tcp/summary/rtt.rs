//! A fixed-size RTT sketch: exact count, min, mean and max; exact percentiles for the first
//! samples, then a log-scale histogram (quarter-octave buckets, about ±9 %) for the rest.

use super::RttStats;

/// Samples kept exactly before the histogram takes over.
const EXACT: usize = 8;
/// Quarter-octave buckets from 1 µs up to 2^28 µs (about 268 s); larger values land in the last.
const BUCKETS: usize = 113;
const BASE_NS: f64 = 1_000.0;

/// The sketch of one direction's RTT samples. Its size never grows with the number of samples.
#[derive(Clone, Debug, Default)]
pub struct RttSketch {
    count: u64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
    exact: [u64; EXACT],
    histogram: Option<Box<[u32; BUCKETS]>>,
}

fn bucket_of(ns: u64) -> usize {
    if (ns as f64) < BASE_NS {
        return 0;
    }
    let b = ((ns as f64 / BASE_NS).log2() * 4.0).floor() as usize + 1;
    b.min(BUCKETS - 1)
}

/// The geometric middle of a bucket, in nanoseconds.
fn bucket_value(b: usize) -> f64 {
    if b == 0 {
        return BASE_NS / 2.0;
    }
    let lo = BASE_NS * 2f64.powf((b - 1) as f64 / 4.0);
    lo * 2f64.powf(1.0 / 8.0)
}

impl RttSketch {
    /// Adds one sample.
    pub fn add(&mut self, ns: u64) {
        if self.count == 0 || ns < self.min_ns {
            self.min_ns = ns;
        }
        if ns > self.max_ns {
            self.max_ns = ns;
        }
        if (self.count as usize) < EXACT {
            self.exact[self.count as usize] = ns;
        } else {
            let h = self.histogram.get_or_insert_with(|| {
                let mut h = Box::new([0u32; BUCKETS]);
                for &v in &self.exact {
                    h[bucket_of(v)] += 1;
                }
                h
            });
            let b = bucket_of(ns);
            h[b] = h[b].saturating_add(1);
        }
        self.count += 1;
        self.sum_ns += ns as u128;
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The nearest-rank `p` quantile (0 < p ≤ 1).
    pub fn quantile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
        match &self.histogram {
            None => {
                let mut v: Vec<u64> = self.exact[..self.count as usize].to_vec();
                v.sort_unstable();
                Some(v[rank as usize - 1])
            }
            Some(h) => {
                let mut seen = 0u64;
                for (b, &n) in h.iter().enumerate() {
                    seen += n as u64;
                    if seen >= rank {
                        let v = bucket_value(b).round() as u64;
                        return Some(v.clamp(self.min_ns, self.max_ns));
                    }
                }
                Some(self.max_ns)
            }
        }
    }

    /// The statistics written to the flow row.
    pub fn stats(&self) -> RttStats {
        if self.count == 0 {
            return RttStats::default();
        }
        RttStats {
            samples: self.count,
            min_ns: Some(self.min_ns as i64),
            mean_ns: Some((self.sum_ns / self.count as u128) as i64),
            max_ns: Some(self.max_ns as i64),
            p50_ns: self.quantile(0.5).map(|v| v as i64),
            p95_ns: self.quantile(0.95).map(|v| v as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sketch_has_no_statistics() {
        assert_eq!(RttSketch::default().stats(), RttStats::default());
    }

    #[test]
    fn few_samples_are_exact() {
        let mut s = RttSketch::default();
        for v in [30_000_000, 10_000_000, 20_000_000] {
            s.add(v);
        }
        let st = s.stats();
        assert_eq!(st.samples, 3);
        assert_eq!(st.min_ns, Some(10_000_000));
        assert_eq!(st.max_ns, Some(30_000_000));
        assert_eq!(st.mean_ns, Some(20_000_000));
        assert_eq!(st.p50_ns, Some(20_000_000));
        assert_eq!(st.p95_ns, Some(30_000_000));
    }

    #[test]
    fn many_samples_stay_within_the_bucket_error() {
        let mut s = RttSketch::default();
        // 1..=1000 ms.
        for i in 1..=1000u64 {
            s.add(i * 1_000_000);
        }
        let st = s.stats();
        assert_eq!(st.samples, 1000);
        assert_eq!(st.min_ns, Some(1_000_000));
        assert_eq!(st.max_ns, Some(1_000_000_000));
        assert_eq!(st.mean_ns, Some(500_500_000));
        let p50 = st.p50_ns.unwrap() as f64;
        let p95 = st.p95_ns.unwrap() as f64;
        assert!((p50 / 500e6 - 1.0).abs() < 0.10, "p50 {p50}");
        assert!((p95 / 950e6 - 1.0).abs() < 0.10, "p95 {p95}");
    }
}
