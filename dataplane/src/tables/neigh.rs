//! Neighbor cache (placeholder).
