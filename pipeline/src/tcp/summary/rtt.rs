//! A fixed-size RTT sketch: exact count, min, mean and max; exact percentiles for the first
//! samples, then a log-scale histogram (quarter-octave buckets, about ±9 %) for the rest.

use super::RttStats;

/// Samples kept exactly before the histogram takes over.
const EXACT: usize = 8;
/// Quarter-octave buckets from 1 µs up to 2^28 µs (about 268 s); larger values land in the last.
const BUCKETS: usize = 113;
const BASE_NS: f64 = 1_000.0;

/// The sketch of one direction's RTT samples. Its size never grows with the number of samples.
///
/// One lives in each direction of every tracked connection, so the inline part is 32 bytes:
/// count, sum, min and max. The exact samples (and later the histogram) are boxed on the second
/// sample; with one sample, min is that sample.
#[derive(Clone, Debug, Default)]
pub struct RttSketch {
    count: u64,
    /// Saturating: 2^64 ns is 584 years of summed round trips.
    sum_ns: u64,
    min_ns: u64,
    max_ns: u64,
    spill: Option<Box<Spill>>,
}

/// The samples beyond the first, for percentiles.
#[derive(Clone, Debug)]
struct Spill {
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
        if self.count == 0 {
            self.min_ns = ns;
        } else {
            let first = self.min_ns;
            let spill = self.spill.get_or_insert_with(|| {
                let mut exact = [0; EXACT];
                exact[0] = first;
                Box::new(Spill { exact, histogram: None })
            });
            if (self.count as usize) < EXACT {
                spill.exact[self.count as usize] = ns;
            } else {
                let exact = &spill.exact;
                let h = spill.histogram.get_or_insert_with(|| {
                    let mut h = Box::new([0u32; BUCKETS]);
                    for &v in exact {
                        h[bucket_of(v)] += 1;
                    }
                    h
                });
                let b = bucket_of(ns);
                h[b] = h[b].saturating_add(1);
            }
            self.min_ns = self.min_ns.min(ns);
        }
        self.max_ns = self.max_ns.max(ns);
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Visits every field for packing (see [`crate::tcp::compact`]); the histogram as its
    /// non-empty buckets.
    pub(crate) fn codec<C: crate::tcp::compact::Codec>(&mut self, c: &mut C) {
        let RttSketch { count, sum_ns, min_ns, max_ns, spill } = self;
        c.u64(count);
        c.duration(sum_ns);
        c.duration(min_ns);
        c.duration(max_ns);
        let empty = || Box::new(Spill { exact: [0; EXACT], histogram: None });
        c.option_with(spill, empty, |c, spill| {
            let Spill { exact, histogram } = &mut **spill;
            exact.iter_mut().for_each(|v| c.duration(v));
            c.option_with(histogram, || Box::new([0; BUCKETS]), |c, h| {
                if C::READING {
                    h.fill(0);
                }
                let mut used = h.iter().filter(|&&n| n != 0).count() as u64;
                c.u64(&mut used);
                let mut at = 0;
                for _ in 0..used.min(BUCKETS as u64) {
                    // The gap since the last non-empty bucket, then its count.
                    let mut gap = h[at..].iter().position(|&n| n != 0).unwrap_or(0) as u64;
                    c.u64(&mut gap);
                    at = (at + gap as usize).min(BUCKETS - 1);
                    c.u32(&mut h[at]);
                    at = (at + 1).min(BUCKETS - 1);
                }
            });
        });
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
        let spill = match &self.spill {
            None => return Some(self.min_ns),
            Some(spill) => spill,
        };
        match &spill.histogram {
            None => {
                let mut v = spill.exact;
                v[..self.count as usize].sort_unstable();
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
            mean_ns: Some((self.sum_ns / self.count) as i64),
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
