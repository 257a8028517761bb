//! Multi-node federation tests live in `tests/`.
