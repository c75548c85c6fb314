//! The per-batch packet pipeline.
