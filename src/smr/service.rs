//! The `StateMachine` a replicated service implements, as the server proxy sees it (thesis
//! 6.3.2: command signatures, C-Dep, and the service's own code).
//!
//! Commands and replies are bytes: the service decodes its commands ([`Service::signature`]
//! tells C-G what it needs), and its replies go back to the client as they are.
//!
//! **Shared and exclusive execution.** Under P-SMR several worker threads execute independent
//! commands on the *same* state at once. Rust states the contract directly:
//! [`Service::execute_shared`] takes `&self` and runs concurrently with other workers'
//! single-lane commands, which C-Dep says touch disjoint state; the service implements those
//! commands with interior mutability (for the B+-tree store: values are atomics, so an update
//! stores in place). [`Service::execute_exclusive`] takes `&mut self` and runs with every other
//! worker waiting (synchronous mode). Sequential SMR executes everything exclusively.

use super::cdep::{CDep, KeyRange, Signature};

/// A command the service cannot decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("command not understood by the service")]
pub struct BadCommand;

/// opt-PSMR: executing the command here would touch state another worker shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the command would touch state another worker shares")]
pub struct Conflict;

/// A snapshot the service cannot restore from, with what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("service snapshot: {0}")]
pub struct ServiceSnapshotError(pub String);

/// A replicated service. See the module docs.
pub trait Service: Send + Sync + Sized + 'static {
    /// The command dependencies the service declares.
    fn dependencies() -> CDep;

    /// The command's class and key, what C-G maps it by.
    fn signature(command: &[u8]) -> Result<Signature, BadCommand>;

    /// Executes a command C-G sends to one lane, concurrently with other lanes' commands, and
    /// appends its reply to `reply`.
    fn execute_shared(&self, command: &[u8], reply: &mut Vec<u8>);

    /// Executes any command with no other worker running.
    fn execute_exclusive(&mut self, command: &[u8], reply: &mut Vec<u8>);

    /// opt-PSMR: executes a command of an optimistic class in the lane owning `range`,
    /// concurrently with other lanes, if it touches nothing outside what that lane owns; refuses
    /// it otherwise, having changed nothing. Must decide the same way on every replica: only from
    /// the state and the command. The default refuses everything.
    fn execute_optimistic(
        &self,
        _command: &[u8],
        _range: KeyRange,
        _reply: &mut Vec<u8>,
    ) -> Result<(), Conflict> {
        Err(Conflict)
    }

    /// Appends the state to `out`.
    fn snapshot(&self, out: &mut Vec<u8>);

    /// The state a snapshot holds.
    fn restore(bytes: &[u8]) -> Result<Self, ServiceSnapshotError>;

    /// A digest of the state that replicas holding the same state agree on.
    fn checksum(&self) -> u64;
}
