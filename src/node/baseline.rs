//! The raw transport a protocol run is compared with (`--baseline`), measured on the same backend,
//! the same hosts and the same number of processes just before the protocol runs:
//!
//! - U-Ring Paxos: a TCP ring of `n` reactors; the first ([`RingRole::Source`]) writes 32 KB buffers
//!   as fast as its link takes them, each next one ([`RingRole::Forwarder`]) forwards what it
//!   receives, the last ([`RingRole::Sink`]) counts. Every byte crosses the same n-1 links a value
//!   crosses on its way around a U-Ring.
//!
//!   ```text
//!   source ──TCP──> forwarder ──TCP──> ... ──TCP──> sink (measures)
//!   ```
//!
//!   That is the traffic of one proposer. With [`RingSenders::Every`] (`ringsmr local
//!   --baseline-senders every`) the stages are [`RingRole::Relay`]s on a closed ring instead: each
//!   injects 32 KB units of its own and forwards the others' until they have crossed n-1 links, the
//!   traffic of a run in which every process proposes, and each measures what passes through it.
//!   On 2 cores the two differ: the chain's heavy stage (the forwarder) gets a core to itself and
//!   its two light ones share the other, while three equal relays cannot be split evenly, just as
//!   three equal U-Ring processes cannot. Measured on one machine, the ring carried 0.91 of what
//!   the chain did (`bench/RESULTS.md`, eighth session). `efficiency` stays measured against the
//!   chain; the ring is there to tell how much of a gap is that placement.
//!
//!   ```text
//!   relay 0 ──TCP──> relay 1 ──TCP──> relay 2 ──TCP──┐   (every relay injects, forwards, measures)
//!      ^─────────────────────────────────────────────┘
//!   ```
//! - M-Ring Paxos: one sender ([`MulticastRole::Sender`]) ip-multicasts 8 KB datagrams (thesis 3.5.6)
//!   as fast as the kernel takes them; the other `n-1` ([`MulticastRole::Receiver`]) receive, and
//!   the figure is the mean of what they received.
//!
//! Each stage is one reactor on one thread, like a node, and runs on its own: [`tcp_ring`] and
//! [`multicast`] run every stage in this process (`ringsmr local`), and a node process runs the one
//! stage `ringsmr bench` gives it (see [`control`](super::control)). The measuring stages (sink,
//! receivers) time their own window: from [`WARMUP`] after their first byte for the asked duration,
//! so stages started at slightly different moments on different hosts still measure a steady
//! stream. The others run until they are stopped, their downstream link closes, or a deadline that
//! no measuring window outlasts.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::io::buffer::InBuf;
use crate::io::socket::MulticastOptions;
use crate::io::{BackendChoice, ConnId, Handler, Limits, Reactor, Received, UdpId};

const RING_BUFFER_BYTES: usize = 32 * 1024;
const DATAGRAM_BYTES: usize = 8 * 1024;
/// A relay's unit starts with the number of links it has still to cross (u32, little-endian).
const UNIT_HEADER_BYTES: usize = 4;
/// The bytes of the units a ring of relays keeps in circulation: each relay injects its share at
/// the start and then one new unit for each unit that ends at it, so the ring never holds more
/// than its staging room (it cannot congest and cannot drop) and every relay sends at the same
/// rate, as every proposer of a run does. Four times the protocol's default window of bytes, so
/// this does not hold the ring back more than the window holds back the protocol.
const RELAY_CIRCULATING_BYTES: usize = 4 << 20;
/// How long a relay goes on relaying after its own window closed, so that the windows of the
/// other relays, which opened at about the same moment, close on a ring still running.
const RELAY_LINGER: Duration = Duration::from_millis(500);
/// Bytes a forwarder holds for its downstream link beyond what the link's send buffer takes.
const FORWARD_STAGING_BYTES: usize = 8 << 20;
/// A measuring stage starts its window this long after its first byte (connections settle, socket
/// buffers fill).
pub const WARMUP: Duration = Duration::from_millis(200);
/// How long a measuring stage waits for its first byte before it reports the transport broken.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a sending stage outlives the longest window a measuring stage can need of it.
const STOP_SLACK: Duration = Duration::from_secs(5);

/// A stage of the U-Ring baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RingRole {
    /// Writes as fast as its downstream link takes.
    Source,
    /// Forwards what it receives.
    Forwarder,
    /// Counts what it receives: the figure.
    Sink,
    /// One stage of a closed ring in which every stage sends: injects buffers of its own, forwards
    /// each buffer it receives until that buffer has crossed n-1 links, and counts what passes
    /// through it (received and injected). Every relay measures.
    Relay {
        /// Stages on the ring: a unit crosses `stages - 1` links, as a value does on a U-Ring.
        stages: u16,
    },
}

/// A stage of the M-Ring baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MulticastRole {
    Sender,
    /// Counts what it receives: the mean over receivers is the figure.
    Receiver,
}

/// What one stage measured. Measuring stages report their window; the others their whole run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageReport {
    pub received_bytes: u64,
    pub secs: f64,
}

impl StageReport {
    pub fn mbit_per_s(&self) -> f64 {
        self.received_bytes as f64 * 8.0 / self.secs.max(1e-9) / 1e6
    }
}

/// The reactor's view of a stage during one poll: counts (and, on a forwarder, stages for
/// sending) what arrives, and follows the downstream link.
struct Inputs {
    received_bytes: u64,
    first_byte_at: Option<Instant>,
    staged: Vec<u8>,
    forward: bool,
    out: Option<ConnId>,
    out_open: bool,
    /// The downstream link closed (after it was open: the next stage ended) or failed to connect.
    out_closed: Option<io::Error>,
    /// A relay takes whole units and forwards those with links left to cross.
    relay: bool,
    /// Units a relay had no room to forward.
    dropped_bytes: u64,
    /// Units of its own a relay may inject now.
    units_to_inject: usize,
}

impl Inputs {
    fn new(forward: bool, out: Option<ConnId>) -> Inputs {
        Inputs {
            received_bytes: 0,
            first_byte_at: None,
            staged: Vec::with_capacity(if forward { FORWARD_STAGING_BYTES } else { 0 }),
            forward,
            out,
            out_open: false,
            out_closed: None,
            relay: false,
            dropped_bytes: 0,
            units_to_inject: 0,
        }
    }

    fn for_relay(out: ConnId, stages: u16) -> Inputs {
        let units_to_inject =
            (RELAY_CIRCULATING_BYTES / RING_BUFFER_BYTES / usize::from(stages)).max(1);
        Inputs { relay: true, units_to_inject, ..Inputs::new(true, Some(out)) }
    }

    /// A relay's input: whole units, each counted once it is forwarded or has ended here; each
    /// that ended earns the relay one unit of its own to inject. A relay never stops reading: on a
    /// ring in which every stage sends, one that waited for room to forward could wait for itself.
    /// A unit that found no staging room would be dropped, not counted, and fail the measurement;
    /// none can, since fewer units circulate than staging holds (`RELAY_CIRCULATING_BYTES`).
    fn relay_units(&mut self, inbox: &mut InBuf) {
        let bytes = inbox.filled();
        let mut taken = 0;
        while let Some(unit) = bytes.get(taken..taken + RING_BUFFER_BYTES) {
            taken += RING_BUFFER_BYTES;
            let links_left = unit_links_left(unit);
            if links_left > 1 {
                if self.staged.capacity() - self.staged.len() < RING_BUFFER_BYTES {
                    self.dropped_bytes += RING_BUFFER_BYTES as u64;
                    continue;
                }
                self.staged.extend_from_slice(&(links_left - 1).to_le_bytes());
                self.staged.extend_from_slice(&unit[UNIT_HEADER_BYTES..]);
            } else {
                self.units_to_inject += 1;
            }
            self.count(RING_BUFFER_BYTES);
        }
        inbox.consume(taken);
    }

    fn count(&mut self, bytes: usize) {
        if bytes > 0 && self.first_byte_at.is_none() {
            self.first_byte_at = Some(Instant::now());
        }
        self.received_bytes += bytes as u64;
    }
}

impl Handler for Inputs {
    fn accepted(&mut self, _: ConnId, _: SocketAddr) {}
    fn connected(&mut self, conn: ConnId) {
        if Some(conn) == self.out {
            self.out_open = true;
        }
    }
    fn closed(&mut self, conn: ConnId, cause: io::Error) {
        if Some(conn) == self.out {
            self.out_closed = Some(cause);
        }
    }
    fn received(&mut self, _: ConnId, inbox: &mut InBuf) -> Received {
        if self.relay {
            self.relay_units(inbox);
            return Received::Keep;
        }
        let bytes = inbox.filled();
        self.count(bytes.len());
        if self.forward {
            // Bytes beyond the staging room are dropped (counted as received, not forwarded): the
            // next stage then simply sees less, which is what a slow relay means.
            let room = self.staged.capacity() - self.staged.len();
            self.staged.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        inbox.consume(bytes.len());
        Received::Keep
    }
    fn datagram(&mut self, _: UdpId, datagram: Bytes) {
        self.count(datagram.len());
    }
    fn woken(&mut self) {}
}

fn limits() -> Limits {
    Limits { conns_max: 4, ..Limits::default() }
}

fn invalid_input(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// The window of a measuring stage: starts [`WARMUP`] after the first byte, lasts `duration`.
struct Window {
    duration: Duration,
    first_byte_deadline: Instant,
    start: Option<(Instant, u64)>,
}

impl Window {
    fn new(duration: Duration) -> Window {
        Window { duration, first_byte_deadline: Instant::now() + FIRST_BYTE_TIMEOUT, start: None }
    }

    /// The stage's report once the window is over, or once the stage must end (`ending`).
    fn poll(&mut self, inputs: &Inputs, ending: bool) -> Option<io::Result<StageReport>> {
        let now = Instant::now();
        if self.start.is_none()
            && let Some(first) = inputs.first_byte_at
            && now >= first + WARMUP
        {
            self.start = Some((now, inputs.received_bytes));
        }
        match self.start {
            Some((at, bytes)) if ending || now >= at + self.duration => Some(Ok(StageReport {
                received_bytes: inputs.received_bytes - bytes,
                secs: (now - at).as_secs_f64(),
            })),
            Some(_) => None,
            None if ending => Some(Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "stopped before its measuring window began",
            ))),
            None if inputs.first_byte_at.is_none() && now >= self.first_byte_deadline => {
                Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no bytes arrived from the sending stage within {} s",
                        FIRST_BYTE_TIMEOUT.as_secs()
                    ),
                )))
            }
            None => None,
        }
    }
}

fn unit_links_left(unit: &[u8]) -> u32 {
    let mut header = [0; UNIT_HEADER_BYTES];
    header.copy_from_slice(&unit[..UNIT_HEADER_BYTES]);
    u32::from_le_bytes(header)
}

/// When a sending stage gives up on its own: after the longest window it can feed.
fn give_up_at(started: Instant, duration: Duration) -> Instant {
    started + FIRST_BYTE_TIMEOUT + WARMUP + duration + STOP_SLACK
}

/// Where a stage's loop stands at the top of one turn.
enum Turn {
    /// The measuring stage's window closed: its report (or why it measured nothing).
    Done(io::Result<StageReport>),
    /// A stage that does not measure was told to stop, or ran out of time.
    Stop,
    /// Go on; `measuring` tells the stage with the window from the others.
    Go { measuring: bool },
}

fn turn(
    window: &mut Option<Window>,
    inputs: &Inputs,
    stop: &AtomicBool,
    give_up_at: Instant,
) -> Turn {
    let ending = stop.load(Ordering::Relaxed) || Instant::now() >= give_up_at;
    match window.as_mut() {
        Some(w) => w.poll(inputs, ending).map_or(Turn::Go { measuring: true }, Turn::Done),
        None if ending => Turn::Stop,
        None => Turn::Go { measuring: false },
    }
}

impl RingRole {
    /// Whether a stage of this role measures (and so ends after its window).
    pub fn measures(self) -> bool {
        matches!(self, RingRole::Sink | RingRole::Relay { .. })
    }
}

/// The role of stage `i` of a chain of `n`: the first sends, the last measures.
pub fn ring_role(i: usize, n: usize) -> RingRole {
    if i + 1 >= n {
        RingRole::Sink
    } else if i == 0 {
        RingRole::Source
    } else {
        RingRole::Forwarder
    }
}

/// One stage of the U-Ring baseline, listening (so that the stage before it can connect) and not
/// running yet.
pub struct RingStage {
    reactor: Reactor,
    listen_addr: SocketAddr,
}

impl RingStage {
    /// Listens on `listen` (port 0: any free port; see [`RingStage::local_addr`]).
    pub fn bind(backend: BackendChoice, listen: SocketAddr) -> io::Result<RingStage> {
        let mut reactor = Reactor::new(backend, limits()).map_err(io::Error::other)?;
        let listener = reactor.listen(listen).map_err(io::Error::other)?;
        let listen_addr = reactor.local_addr(listener)?;
        Ok(RingStage { reactor, listen_addr })
    }

    /// Where the stage before this one connects.
    pub fn local_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// Runs as `role`, sending to the stage listening at `next` (none for the sink), and returns
    /// what it measured. The sink returns after its window; the others when `stop` is set, when
    /// `next` closes the link (the stage after this one ended), or at their own deadline.
    pub fn run(
        mut self,
        role: RingRole,
        next: Option<SocketAddr>,
        duration: Duration,
        stop: &AtomicBool,
    ) -> io::Result<StageReport> {
        let relay = matches!(role, RingRole::Relay { .. });
        let next = match (role, next) {
            (RingRole::Sink, None) => None,
            (RingRole::Source | RingRole::Forwarder | RingRole::Relay { .. }, Some(a)) => Some(a),
            (role, next) => {
                return Err(invalid_input(format!(
                    "a {role:?} stage {} a next stage",
                    if next.is_some() { "takes no" } else { "needs" }
                )));
            }
        };
        let out = match next {
            Some(a) => Some(self.reactor.connect(a).map_err(io::Error::other)?),
            None => None,
        };
        let (mut inputs, chunk) = match (role, out) {
            (RingRole::Relay { stages }, Some(out)) => {
                if stages < 2 {
                    return Err(invalid_input(format!("a ring of {stages} stages has no link")));
                }
                let mut unit = vec![0x5a; RING_BUFFER_BYTES];
                let links = u32::from(stages) - 1;
                unit[..UNIT_HEADER_BYTES].copy_from_slice(&links.to_le_bytes());
                (Inputs::for_relay(out, stages), unit)
            }
            (RingRole::Source, _) => (Inputs::new(false, out), vec![0x5a; RING_BUFFER_BYTES]),
            _ => (Inputs::new(role == RingRole::Forwarder, out), Vec::new()),
        };
        let started = Instant::now();
        let give_up_at = give_up_at(started, duration);
        let mut window = (role == RingRole::Sink || relay).then(|| Window::new(duration));
        // A relay's report, kept while it lingers (see `RELAY_LINGER`).
        let mut relayed: Option<(Instant, StageReport)> = None;
        loop {
            if let Some((until, report)) = relayed
                && Instant::now() >= until
            {
                return Ok(report);
            }
            match turn(&mut window, &inputs, stop, give_up_at) {
                Turn::Done(Ok(report)) if relay => {
                    if inputs.dropped_bytes > 0 {
                        return Err(io::Error::other(format!(
                            "a relay dropped {} bytes it had no room to forward: the ring was \
                             measured congested",
                            inputs.dropped_bytes
                        )));
                    }
                    relayed = Some((Instant::now() + RELAY_LINGER, report));
                    window = None;
                }
                Turn::Done(report) => return report,
                Turn::Stop => break,
                Turn::Go { .. } => {}
            }
            self.reactor.poll(Some(Duration::from_millis(1)), &mut inputs)?;
            if let Some(cause) = inputs.out_closed.take() {
                if !inputs.out_open {
                    let to = next.map_or_else(String::new, |a| a.to_string());
                    return Err(io::Error::new(
                        cause.kind(),
                        format!("connecting to the next stage at {to}: {cause}"),
                    ));
                }
                if relay && relayed.is_none() {
                    return Err(io::Error::new(
                        cause.kind(),
                        format!(
                            "the next stage closed the ring before this relay measured: {cause}"
                        ),
                    ));
                }
                break; // the next stage ended, so there is no one left to send to
            }
            if let Some(outbox) = out.and_then(|c| self.reactor.outbox(c)) {
                if role == RingRole::Source {
                    while outbox.push(&chunk) {}
                } else {
                    let k = inputs.staged.len().min(outbox.free_bytes());
                    outbox.push(&inputs.staged[..k]);
                    inputs.staged.drain(..k);
                    // Like a U-Ring process, a relay passes on what others sent before it adds
                    // its own.
                    while relay
                        && inputs.units_to_inject > 0
                        && inputs.staged.is_empty()
                        && outbox.push(&chunk)
                    {
                        inputs.units_to_inject -= 1;
                        inputs.received_bytes += RING_BUFFER_BYTES as u64;
                    }
                }
            }
            self.reactor.flush();
        }
        if relay {
            return relayed.map(|(_, report)| report).ok_or_else(|| {
                io::Error::new(io::ErrorKind::Interrupted, "stopped before this relay measured")
            });
        }
        Ok(StageReport {
            received_bytes: inputs.received_bytes,
            secs: started.elapsed().as_secs_f64(),
        })
    }
}

/// One stage of the M-Ring baseline: a reactor whose socket has joined the group.
pub struct MulticastStage {
    reactor: Reactor,
    udp: UdpId,
    group: MulticastOptions,
}

impl MulticastStage {
    pub fn join(backend: BackendChoice, group: MulticastOptions) -> io::Result<MulticastStage> {
        let mut reactor = Reactor::new(backend, limits()).map_err(io::Error::other)?;
        let udp = reactor.add_multicast(group, limits().socket).map_err(io::Error::other)?;
        Ok(MulticastStage { reactor, udp, group })
    }

    /// Runs as `role`. A receiver returns after its window; the sender when `stop` is set or at
    /// its own deadline.
    pub fn run(
        mut self,
        role: MulticastRole,
        duration: Duration,
        stop: &AtomicBool,
    ) -> io::Result<StageReport> {
        let mut inputs = Inputs::new(false, None);
        let datagram = vec![0x5a; DATAGRAM_BYTES];
        let to = SocketAddr::V4(self.group.group);
        let started = Instant::now();
        let give_up_at = give_up_at(started, duration);
        let mut window = (role == MulticastRole::Receiver).then(|| Window::new(duration));
        if role == MulticastRole::Sender {
            // The sender does not receive its own datagrams, as M-Ring's coordinator does not
            // (`node::multicast_link`): the kernel's looped-back copy would only cost it time.
            self.reactor.set_multicast_membership(self.udp, &self.group, false)?;
        }
        loop {
            match turn(&mut window, &inputs, stop, give_up_at) {
                Turn::Done(report) => return report,
                Turn::Stop => break,
                Turn::Go { measuring: true } => {
                    self.reactor.poll(Some(Duration::from_millis(1)), &mut inputs)?;
                }
                Turn::Go { measuring: false } => {
                    for _ in 0..64 {
                        if self.reactor.send_datagram(self.udp, &datagram, to).is_err() {
                            break; // socket buffer full: let the receivers catch up
                        }
                    }
                    self.reactor.poll(Some(Duration::ZERO), &mut inputs)?;
                }
            }
        }
        Ok(StageReport {
            received_bytes: inputs.received_bytes,
            secs: started.elapsed().as_secs_f64(),
        })
    }
}

/// A stage ready to run on its own thread: whether it measures, and how to run it.
type StageRun = (bool, Box<dyn FnOnce(&AtomicBool) -> io::Result<StageReport> + Send>);

/// Runs every stage on its own thread, pinned like the nodes are; waits for the measuring stages,
/// then stops the others. Reports in the stages' order.
fn run_in_threads(stages: Vec<StageRun>) -> io::Result<Vec<StageReport>> {
    let stop = Arc::new(AtomicBool::new(false));
    let cores = crate::io::pin::allowed_cores();
    let mut threads = Vec::with_capacity(stages.len());
    for (i, (measuring, run)) in stages.into_iter().enumerate() {
        let stop = Arc::clone(&stop);
        let core = cores[i % cores.len()];
        let thread = std::thread::spawn(move || {
            let _ = crate::io::pin::pin_current_thread(core);
            run(&stop)
        });
        threads.push((measuring, Some(thread)));
    }
    let mut reports: Vec<Option<io::Result<StageReport>>> =
        (0..threads.len()).map(|_| None).collect();
    for pass_measuring in [true, false] {
        if !pass_measuring {
            stop.store(true, Ordering::Relaxed);
        }
        for ((measuring, thread), report) in threads.iter_mut().zip(reports.iter_mut()) {
            if *measuring != pass_measuring {
                continue;
            }
            if let Some(t) = thread.take() {
                *report = Some(
                    t.join().unwrap_or_else(|_| Err(io::Error::other("a baseline stage panicked"))),
                );
            }
        }
    }
    reports
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(io::Error::other("a baseline stage did not run"))))
        .collect()
}

/// Which stages of the U-Ring baseline send bytes of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingSenders {
    /// Every stage, as when every process proposes: a closed ring of [`RingRole::Relay`]s. The
    /// figure is the mean of what passes through each stage.
    Every,
    /// The first only: a chain from a [`RingRole::Source`] to a [`RingRole::Sink`], which
    /// measures.
    First,
}

/// Mbit/s through `n` reactors on loopback that pass 32 KB buffers along TCP links, each buffer
/// crossing n-1 links.
pub fn tcp_ring(
    backend: BackendChoice,
    n: usize,
    senders: RingSenders,
    duration: Duration,
) -> io::Result<f64> {
    let n = n.max(2);
    let any_port: SocketAddr = "127.0.0.1:0".parse().expect("literal");
    let stages =
        (0..n).map(|_| RingStage::bind(backend, any_port)).collect::<io::Result<Vec<_>>>()?;
    let addrs: Vec<SocketAddr> = stages.iter().map(RingStage::local_addr).collect();
    let stages_u16 = u16::try_from(n).map_err(|_| invalid_input(format!("{n} stages")))?;
    let roles: Vec<(RingRole, Option<SocketAddr>)> = (0..n)
        .map(|i| match senders {
            RingSenders::Every => {
                (RingRole::Relay { stages: stages_u16 }, Some(addrs[(i + 1) % n]))
            }
            RingSenders::First => (ring_role(i, n), addrs.get(i + 1).copied()),
        })
        .collect();
    let runs = stages
        .into_iter()
        .zip(roles.iter().copied())
        .map(|(stage, (role, next))| -> StageRun {
            (role.measures(), Box::new(move |stop| stage.run(role, next, duration, stop)))
        })
        .collect();
    let reports = run_in_threads(runs)?;
    let measured: Vec<f64> = reports
        .iter()
        .zip(&roles)
        .filter(|(_, (role, _))| role.measures())
        .map(|(r, _)| r.mbit_per_s())
        .collect();
    Ok(measured.iter().sum::<f64>() / measured.len() as f64)
}

/// Mean Mbit/s `n - 1` receivers get of one sender's 8 KB multicast datagrams.
pub fn multicast(
    backend: BackendChoice,
    n: usize,
    group: MulticastOptions,
    duration: Duration,
) -> io::Result<f64> {
    let receivers = n.max(2) - 1;
    let mut runs: Vec<StageRun> = Vec::with_capacity(receivers + 1);
    for i in 0..=receivers {
        let stage = MulticastStage::join(backend, group)?;
        let role = if i == 0 { MulticastRole::Sender } else { MulticastRole::Receiver };
        runs.push((
            role == MulticastRole::Receiver,
            Box::new(move |stop| stage.run(role, duration, stop)),
        ));
    }
    let reports = run_in_threads(runs)?;
    Ok(reports[1..].iter().map(StageReport::mbit_per_s).sum::<f64>() / receivers as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_ring_of_three_stages_carries_bytes_to_its_sink() {
        let mbit =
            tcp_ring(BackendChoice::Epoll, 3, RingSenders::First, Duration::from_millis(300))
                .unwrap();
        assert!(mbit > 0.0, "{mbit}");
    }

    #[test]
    fn a_ring_of_relays_carries_every_relays_units_without_dropping_any() {
        for backend in [BackendChoice::Epoll, BackendChoice::Auto] {
            // A relay that dropped a unit, or whose ring broke, fails its stage and so this call.
            let mbit =
                tcp_ring(backend, 3, RingSenders::Every, Duration::from_millis(300)).unwrap();
            assert!(mbit > 0.0, "{backend:?}: {mbit}");
        }
    }

    #[test]
    fn a_relay_forwards_a_unit_until_it_has_crossed_its_links() {
        let mut inputs = Inputs::for_relay(0, 3);
        let injected_at_start = inputs.units_to_inject;
        let mut inbox = InBuf::with_capacity(4 * RING_BUFFER_BYTES);
        let unit = |links: u32| {
            let mut u = vec![7u8; RING_BUFFER_BYTES];
            u[..UNIT_HEADER_BYTES].copy_from_slice(&links.to_le_bytes());
            u
        };
        // One unit with two links to go, one that ends here, and half of a third.
        let mut bytes = unit(2);
        bytes.extend_from_slice(&unit(1));
        bytes.extend_from_slice(&unit(2)[..RING_BUFFER_BYTES / 2]);
        let spare = inbox.spare_mut();
        for (dst, src) in spare.iter_mut().zip(&bytes) {
            dst.write(*src);
        }
        inbox.commit(bytes.len());
        inputs.relay_units(&mut inbox);
        assert_eq!(inputs.received_bytes, 2 * RING_BUFFER_BYTES as u64, "two whole units");
        assert_eq!(inbox.filled().len(), RING_BUFFER_BYTES / 2, "the half unit waits");
        assert_eq!(inputs.staged.len(), RING_BUFFER_BYTES, "only the first goes on");
        assert_eq!(unit_links_left(&inputs.staged), 1, "with one link fewer to cross");
        assert_eq!(inputs.units_to_inject, injected_at_start + 1, "the ended one is replaced");
        assert_eq!(inputs.dropped_bytes, 0);
    }

    #[test]
    fn stages_refuse_a_next_stage_that_does_not_fit_their_role() {
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let stop = AtomicBool::new(false);
        let stage = RingStage::bind(BackendChoice::Epoll, any_port).unwrap();
        let e = stage.run(RingRole::Source, None, Duration::from_millis(10), &stop).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_source_whose_next_stage_is_gone_says_where_it_connected() {
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        // A port that was free a moment ago: nothing listens there now.
        let gone = std::net::TcpListener::bind(any_port).unwrap().local_addr().unwrap();
        let stop = AtomicBool::new(false);
        let stage = RingStage::bind(BackendChoice::Epoll, any_port).unwrap();
        let e = stage.run(RingRole::Source, Some(gone), Duration::from_millis(10), &stop);
        let e = e.unwrap_err().to_string();
        assert!(e.contains(&gone.to_string()), "{e}");
    }
}
