//! xvs benchmarks and tools (criterion benches live in benches/).
