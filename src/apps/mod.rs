//! Services the replicated-service layer ([`crate::smr`]) runs in tests and benchmarks: the
//! thesis' in-memory B+-tree key-value store (6.5.2).

pub mod kv;
