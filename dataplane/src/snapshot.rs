//! The immutable snapshot of all tables a worker reads, and its atomic handle.
