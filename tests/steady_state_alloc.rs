//! The hot path allocates nothing: once a 3-node cluster is warm, proposing, ordering and delivering
//! batch after batch asks the heap for no memory at all (thesis 3.5.2 preallocates its buffers for
//! the same reason: an allocator call per packet is what keeps an implementation from wire speed).
//!
//! A counting global allocator counts every allocation of this test process — the three node
//! threads and the test thread, which proposes static payloads and takes deliveries a batch at a
//! time, so it allocates nothing of its own. The tests take turns (they count the same process).
//! `RINGSMR_ALLOC_TRACE=1` prints where the first counted allocations came from, for whoever has to
//! find a new one.
//!
//! M-Ring Paxos needs multicast on loopback: its test moves its own thread (and so the node threads
//! it starts, and their sockets) into a network namespace it creates, and skips where it may not.

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringsmr::io::BackendChoice;
use ringsmr::node::{ClusterFile, Node, NodeOptions, ProtocolName};

mod common;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static TRACING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Held by the test that counts.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// Backtraces printed at most.
const TRACED_MAX: u64 = 400;

thread_local! {
    /// The thread is capturing a backtrace, whose own allocations are not the hot path's.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

/// Backtraces of the first counted allocations, captured without resolving symbols (which takes
/// long enough to stall a node into an election) and printed after the run.
static TRACES: Mutex<Vec<(Option<String>, Backtrace)>> = Mutex::new(Vec::new());

impl Counting {
    fn count(&self) {
        if !COUNTING.load(Ordering::Relaxed) || IN_TRACE.with(Cell::get) {
            return;
        }
        let n = ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        if TRACING.load(Ordering::Relaxed) && n < TRACED_MAX {
            IN_TRACE.with(|t| t.set(true));
            let name = std::thread::current().name().map(str::to_owned);
            let trace = Backtrace::force_capture();
            TRACES.lock().unwrap().push((name, trace));
            IN_TRACE.with(|t| t.set(false));
        }
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Every node proposes this (static, so proposing allocates nothing in the test thread).
static PAYLOAD: [u8; 1000] = [7; 1000];
/// Own values each node keeps in flight.
const OUTSTANDING_PER_NODE: usize = 1024;
/// Batches the cluster delivers (at all nodes together) before counting starts: every buffer, queue
/// and table has grown to what the load needs, and acceptors have kept as many decided instances as
/// they retain (a node keeps 256 MB of 32 KB batches, 8,192 instances) and collect garbage since.
const WARM_UP_BATCHES: u64 = 3 * 12_000;
/// Batches delivered (at all nodes together) while counting.
const COUNTED_BATCHES: u64 = 30_000;
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);

struct Load {
    nodes: Vec<Node>,
    outstanding: Vec<usize>,
    batches: u64,
}

impl Load {
    /// Proposes up to the outstanding bound and takes every delivery; returns whether anything moved.
    fn turn(&mut self) -> bool {
        let mut moved = false;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            while self.outstanding[i] < OUTSTANDING_PER_NODE
                && node.propose(Bytes::from_static(&PAYLOAD)).is_ok()
            {
                self.outstanding[i] += 1;
                moved = true;
            }
            let me = node.id();
            while let Some(b) = node.try_recv_batch() {
                self.batches += 1;
                moved = true;
                let own = match b.values.run_start() {
                    Some(first) => usize::from(first.proposer == me) * b.values.len(),
                    None => b.values.ids().filter(|id| id.proposer == me).count(),
                };
                self.outstanding[i] = self.outstanding[i].saturating_sub(own);
            }
        }
        moved
    }

    fn run_until(&mut self, batches: u64) {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        while self.batches < batches {
            assert!(Instant::now() < deadline, "only {} of {batches} batches", self.batches);
            if !self.turn() {
                std::thread::yield_now();
            }
        }
    }
}

/// Three nodes on loopback ports that were free a moment ago; a port taken meanwhile (by another
/// test's connection) means new ports, a few times.
fn start_cluster(protocol: ProtocolName, backend: BackendChoice) -> Vec<Node> {
    let mut attempts = 0;
    loop {
        let cluster = ClusterFile::local_on_free_ports(protocol, 3, 1).unwrap();
        let started = (0..3)
            .map(|id| Node::start(&cluster, id, NodeOptions { backend, ..NodeOptions::default() }))
            .collect::<Result<Vec<_>, _>>();
        attempts += 1;
        match started {
            Ok(nodes) => return nodes,
            Err(e) if attempts < 3 && e.to_string().contains("in use") => {
                eprintln!("starting again on other ports: {e}");
            }
            Err(e) => panic!("starting the cluster: {e}"),
        }
    }
}

/// Attempts at a steady-state sample: one with a lost link or a new round is not steady state (the
/// reconnection allocates), and is taken again on a fresh cluster.
const ATTEMPTS: usize = 3;

fn zero_allocations_per_delivered_batch(protocol: ProtocolName, backend: BackendChoice) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for attempt in 1..=ATTEMPTS {
        let (allocations, batches, rounds_while_counting, links_lost) = sample(protocol, backend);
        let steady = rounds_while_counting == 0 && links_lost == 0;
        if allocations == 0 || (!steady && attempt < ATTEMPTS) {
            if allocations > 0 {
                eprintln!(
                    "attempt {attempt}: {allocations} allocations, but {links_lost} links lost \
                     and {rounds_while_counting} rounds started: not steady state, again"
                );
                continue;
            }
            return;
        }
        panic!(
            "{allocations} heap allocations while {batches} batches were delivered ({:.3} per \
             batch; {rounds_while_counting} rounds started meanwhile, {links_lost} links lost over \
             the whole run; attempt {attempt}); RINGSMR_ALLOC_TRACE=1 shows where",
            allocations as f64 / batches as f64
        );
    }
}

/// One cluster's count: allocations while `COUNTED_BATCHES` were delivered, the batches, the
/// rounds started meanwhile and the links lost over the whole run.
fn sample(protocol: ProtocolName, backend: BackendChoice) -> (u64, u64, u64, u64) {
    let nodes = start_cluster(protocol, backend);
    let mut load = Load { outstanding: vec![0; nodes.len()], nodes, batches: 0 };
    load.run_until(WARM_UP_BATCHES);

    TRACING.store(std::env::var_os("RINGSMR_ALLOC_TRACE").is_some(), Ordering::Relaxed);
    let from = load.batches;
    let rounds = |load: &Load| load.nodes.iter().map(Node::rounds_started).sum::<u64>();
    let rounds_before = rounds(&load);
    COUNTING.store(true, Ordering::SeqCst);
    load.run_until(from + COUNTED_BATCHES);
    COUNTING.store(false, Ordering::SeqCst);
    let allocations = ALLOCATIONS.swap(0, Ordering::SeqCst);
    let batches = load.batches - from;
    let rounds_while_counting = rounds(&load) - rounds_before;
    for (n, (thread, trace)) in TRACES.lock().unwrap().drain(..).enumerate() {
        eprintln!("allocation {n} on {thread:?}:\n{trace}");
    }
    let links_lost: u64 = load.nodes.into_iter().map(|node| node.stop().links_lost).sum();
    (allocations, batches, rounds_while_counting, links_lost)
}

#[test]
fn u_ring_delivers_without_allocating() {
    zero_allocations_per_delivered_batch(ProtocolName::Uring, BackendChoice::Auto);
}

#[test]
fn u_ring_delivers_without_allocating_on_epoll() {
    zero_allocations_per_delivered_batch(ProtocolName::Uring, BackendChoice::Epoll);
}

/// M-Ring in a network namespace of its own (multicast on its loopback); skips without the
/// privilege to create one.
fn m_ring_in_a_namespace(tag: &str, backend: BackendChoice) {
    let Some(_ns) = common::Netns::create_and_enter(tag) else { return };
    zero_allocations_per_delivered_batch(ProtocolName::Mring, backend);
}

#[test]
fn m_ring_delivers_without_allocating() {
    m_ring_in_a_namespace("alloc", BackendChoice::Auto);
}

#[test]
fn m_ring_delivers_without_allocating_on_epoll() {
    m_ring_in_a_namespace("alloc-epoll", BackendChoice::Epoll);
}
