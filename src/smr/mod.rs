//! Replicated services on Multi-Ring Paxos (thesis chapter 6; issue 6). What exists so far: the
//! linearizability checker the service tests judge recorded client histories with
//! ([`linearizability`]).

pub mod linearizability;
