//! Fixtures shared by the tcpscope benchmarks.
