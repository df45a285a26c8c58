//! The key-value store of the thesis' experiments (6.5.2): an in-memory B+-tree of 8-byte keys
//! and 8-byte values.

pub mod btree;
