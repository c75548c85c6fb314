//! Routes (placeholder).
