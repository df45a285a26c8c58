//! The client library (the client proxy of thesis 6.3.2 and Algorithm 1 lines 1–6): submits
//! commands to a replicated service with a window of outstanding requests, takes the first reply
//! of any replica, and retries what is not answered in time.
//!
//! - **Groups.** C-G, derived from the service's C-Dep and the replicas' MPL exactly as the
//!   replicas derive it, gives each command its group; under opt-PSMR optimistic commands go to
//!   their key's lane first and, if a replica answers `Conflict`, again to g_all.
//! - **Batching and pipelining.** Commands for one group gather in a request batch (up to
//!   `batch_bytes`) until [`Client::flush`] or [`Client::poll`] sends them; up to `window`
//!   commands are outstanding at once.
//! - **Replies** come straight from the replicas that executed the commands: the client keeps a
//!   connection to every replica and takes the first reply to each command.
//! - **Retries.** A command unanswered for `retry_after` goes again, through the next replica
//!   (its entry point rotates), under the same sequence number: the replicas' client tables
//!   execute it at most once and answer copies with the same reply (exactly once).
//! - **Failures.** A replica whose connection breaks is reconnected to in the background; the
//!   others go on answering.

use std::io::ErrorKind;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use thiserror::Error;

use crate::smr::client_table::WINDOW_MAX;
use crate::smr::exec::GROUP_ALL;
use crate::smr::request::{BODY_BYTES_MAX, BatchWriter};
use crate::smr::{
    CDepError, ClientId, CommandToGroups, Destination, ExecModel, KeyPartition, Reply, Service,
    Status,
};

use super::front::{KIND_HELLO, KIND_REQUEST};
use super::stream_io::{Link, SCRATCH_BYTES, read_available, write_available};

/// How a client reaches a service.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The replicas' client endpoints.
    pub replicas: Vec<SocketAddr>,
    /// The replicas' execution model, MPL and key space: C-G must be theirs.
    pub model: ExecModel,
    pub workers: usize,
    pub key_space: u64,
    /// Commands outstanding at most (at most 64, the replicas' table window).
    pub window: usize,
    pub retry_after: Duration,
    /// Request batches of at most this many bytes.
    pub batch_bytes: usize,
    /// `None`: a fresh id.
    pub client_id: Option<ClientId>,
}

impl ClientOptions {
    pub fn new(
        replicas: Vec<SocketAddr>,
        model: ExecModel,
        workers: usize,
        key_space: u64,
    ) -> ClientOptions {
        ClientOptions {
            replicas,
            model,
            workers,
            key_space,
            window: 50,
            retry_after: Duration::from_secs(1),
            batch_bytes: 8 * 1024,
            client_id: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("a client needs at least one replica")]
    NoReplica,
    #[error("window of {0} commands: it must be between 1 and {WINDOW_MAX}")]
    Window(usize),
    #[error(transparent)]
    CDep(#[from] CDepError),
    #[error("command of {0} bytes: at most {BODY_BYTES_MAX}")]
    CommandTooLong(usize),
    #[error("the service refuses the command: {0}")]
    BadCommand(crate::smr::BadCommand),
    #[error("no replica could be reached: {0}")]
    Unreachable(String),
    #[error("polling the replicas' connections: {0}")]
    Poll(std::io::Error),
}

/// `submit` found the window full: take replies first.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("the window of outstanding commands is full")]
pub struct WindowFull;

#[derive(Debug, Default)]
struct Slot {
    in_use: bool,
    seq: u64,
    command: Vec<u8>,
    group: u32,
    sent_at: Option<Instant>,
}

struct Conn {
    address: SocketAddr,
    stream: Option<TcpStream>,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    reconnect_at: Instant,
    /// The socket may have bytes to read (readiness is edge-triggered: set by an event, cleared
    /// when a read drained it), so a poll reads only the connections that have something.
    readable: bool,
}

/// What a client did.
#[derive(Clone, Debug, Default)]
pub struct ClientStats {
    pub submitted: u64,
    pub completed: u64,
    pub retries: u64,
    /// opt-PSMR commands sent again to g_all after a conflict.
    pub conflicts: u64,
    /// Replies to commands already answered (other replicas', or copies').
    pub late_replies: u64,
    pub reconnects: u64,
}

const RECONNECT_EVERY: Duration = Duration::from_millis(100);

/// See the module docs.
pub struct Client<S: Service> {
    id: ClientId,
    model: ExecModel,
    cg: CommandToGroups,
    window: usize,
    retry_after: Duration,
    next_seq: u64,
    /// The lowest sequence number not answered yet (`acked_below` of every batch).
    lowest_open: u64,
    outstanding: usize,
    slots: Vec<Slot>,
    /// An open batch per group that has one.
    batches: Vec<(u32, BatchWriter)>,
    batch_bytes: usize,
    conns: Vec<Conn>,
    entry: usize,
    poll: Poll,
    events: Events,
    stats: ClientStats,
    scratch: Vec<u8>,
    /// The time as of the last poll: when commands enqueued since were sent, near enough for
    /// retries (a clock read per command cost the clients 5% of the machine's CPU).
    now: Instant,
    _service: PhantomData<fn() -> S>,
}

pub(crate) fn fresh_id() -> ClientId {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (nanos ^ (u64::from(std::process::id()) << 40) ^ n.rotate_left(20))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl<S: Service> Client<S> {
    /// Connects to the replicas that are up (the others later).
    pub fn connect(opts: ClientOptions) -> Result<Client<S>, ClientError> {
        if opts.replicas.is_empty() {
            return Err(ClientError::NoReplica);
        }
        if opts.window == 0 || opts.window as u64 > WINDOW_MAX {
            return Err(ClientError::Window(opts.window));
        }
        let lanes = opts.model.lanes(opts.workers);
        let cg =
            CommandToGroups::derive(&S::dependencies(), KeyPartition::new(opts.key_space, lanes))?;
        let poll = Poll::new().map_err(ClientError::Poll)?;
        let now = Instant::now();
        let conns = opts
            .replicas
            .iter()
            .map(|&address| Conn {
                address,
                stream: None,
                inbuf: Vec::new(),
                out: Vec::new(),
                reconnect_at: now,
                readable: false,
            })
            .collect();
        let mut c = Client {
            id: opts.client_id.unwrap_or_else(fresh_id),
            model: opts.model,
            cg,
            window: opts.window,
            retry_after: opts.retry_after,
            next_seq: 0,
            lowest_open: 0,
            outstanding: 0,
            slots: (0..WINDOW_MAX).map(|_| Slot::default()).collect(),
            batches: Vec::new(),
            batch_bytes: opts.batch_bytes,
            conns,
            entry: 0,
            poll,
            events: Events::with_capacity(64),
            stats: ClientStats::default(),
            scratch: vec![0; SCRATCH_BYTES],
            now,
            _service: PhantomData,
        };
        let mut why = String::new();
        for i in 0..c.conns.len() {
            if let Err(e) = c.reconnect(i) {
                why = format!("{}: {e}", c.conns[i].address);
            }
        }
        if c.conns.iter().all(|k| k.stream.is_none()) {
            return Err(ClientError::Unreachable(why));
        }
        c.entry = c.conns.iter().position(|k| k.stream.is_some()).expect("one is up");
        Ok(c)
    }

    pub fn id(&self) -> ClientId {
        self.id
    }

    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// Commands submitted and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Whether [`Self::submit`] would take a command now.
    pub fn has_room(&self) -> bool {
        self.outstanding < self.window && self.next_seq < self.lowest_open + WINDOW_MAX
    }

    fn reconnect(&mut self, i: usize) -> std::io::Result<()> {
        let c = &mut self.conns[i];
        c.reconnect_at = Instant::now() + RECONNECT_EVERY;
        let std_stream =
            std::net::TcpStream::connect_timeout(&c.address, Duration::from_millis(200))?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        self.poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        c.stream = Some(stream);
        c.readable = true;
        c.inbuf.clear();
        c.out.clear();
        c.out.extend_from_slice(&9u32.to_le_bytes());
        c.out.push(KIND_HELLO);
        c.out.extend_from_slice(&self.id.to_le_bytes());
        Ok(())
    }

    /// Queues `command`: it goes with its group's next batch. Returns its sequence number.
    pub fn submit(&mut self, command: &[u8]) -> Result<u64, SubmitError> {
        if !self.has_room() {
            return Err(SubmitError::WindowFull(WindowFull));
        }
        if command.len() > BODY_BYTES_MAX {
            return Err(SubmitError::Client(ClientError::CommandTooLong(command.len())));
        }
        let sig =
            S::signature(command).map_err(|e| SubmitError::Client(ClientError::BadCommand(e)))?;
        if self.outstanding == 0 {
            // After a pause the last poll's time is stale; under load it is recent.
            self.now = Instant::now();
        }
        let seq = self.next_seq;
        let spread = seq as usize;
        let d = if self.model == ExecModel::OptPsmr {
            self.cg.optimistic_destination(sig, spread)
        } else {
            self.cg.destination(sig, spread)
        };
        let group = self.model.group_of(d.unwrap_or(Destination::All));
        let slot = &mut self.slots[(seq % WINDOW_MAX) as usize];
        debug_assert!(!slot.in_use, "the window keeps slots apart");
        slot.in_use = true;
        slot.seq = seq;
        slot.command.clear();
        slot.command.extend_from_slice(command);
        slot.group = group;
        slot.sent_at = None;
        self.next_seq += 1;
        self.outstanding += 1;
        self.stats.submitted += 1;
        self.enqueue(seq);
        Ok(seq)
    }

    /// Puts slot `seq`'s command in its group's open batch, sending the batch first if full.
    fn enqueue(&mut self, seq: u64) {
        let i = (seq % WINDOW_MAX) as usize;
        let group = self.slots[i].group;
        let len = self.slots[i].command.len();
        let at = match self.batches.iter().position(|(g, _)| *g == group) {
            Some(at) => at,
            None => {
                let mut w = BatchWriter::new(self.batch_bytes);
                w.begin(self.id, self.lowest_open);
                self.batches.push((group, w));
                self.batches.len() - 1
            }
        };
        if !self.batches[at].1.fits(len) {
            self.send_batch(at);
        }
        let w = &mut self.batches[at].1;
        if w.count() == 0 {
            w.begin(self.id, self.lowest_open);
        }
        w.push(seq, &self.slots[i].command);
        self.slots[i].sent_at = Some(self.now);
    }

    fn send_batch(&mut self, at: usize) {
        let (group, w) = &mut self.batches[at];
        if w.count() == 0 {
            return;
        }
        let bytes = w.bytes();
        let c = &mut self.conns[self.entry];
        let len = (1 + 4 + bytes.len()) as u32;
        c.out.extend_from_slice(&len.to_le_bytes());
        c.out.push(KIND_REQUEST);
        c.out.extend_from_slice(&group.to_le_bytes());
        c.out.extend_from_slice(bytes);
        w.begin(self.id, self.lowest_open);
    }

    /// Sends every open batch.
    pub fn flush(&mut self) {
        for at in 0..self.batches.len() {
            self.send_batch(at);
        }
        self.write_all();
    }

    fn write_all(&mut self) {
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            let Some(stream) = c.stream.as_mut() else { continue };
            let mut written = 0;
            let broken = write_available(stream, &c.out, &mut written) == Link::Closed;
            c.out.drain(..written);
            if broken {
                self.drop_conn(i);
            }
        }
    }

    fn drop_conn(&mut self, i: usize) {
        if let Some(mut s) = self.conns[i].stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
            self.stats.reconnects += 1;
        }
        self.conns[i].out.clear();
        self.conns[i].inbuf.clear();
        if self.entry == i {
            self.rotate_entry();
        }
    }

    fn rotate_entry(&mut self) {
        let n = self.conns.len();
        for step in 1..=n {
            let j = (self.entry + step) % n;
            if self.conns[j].stream.is_some() {
                self.entry = j;
                return;
            }
        }
        self.entry = (self.entry + 1) % n;
    }

    /// Sends what is open, then waits up to `timeout` for replies, calling `done(seq, status,
    /// body)` for each command answered (once per command). Also retries late commands and
    /// reconnects broken connections. Returns how many commands were answered.
    pub fn poll(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(u64, Status, &[u8]),
    ) -> Result<usize, ClientError> {
        self.flush();
        for i in 0..self.conns.len() {
            if self.conns[i].stream.is_none() && self.now >= self.conns[i].reconnect_at {
                let _ = self.reconnect(i);
            }
        }
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout))
            && e.kind() != ErrorKind::Interrupted
        {
            return Err(ClientError::Poll(e));
        }
        self.now = Instant::now();
        for e in self.events.iter() {
            if let Some(c) = self.conns.get_mut(e.token().0) {
                c.readable |= e.is_readable() || e.is_read_closed() || e.is_error();
            }
        }
        let mut answered = 0;
        for i in 0..self.conns.len() {
            answered += self.read_conn(i, &mut done);
        }
        self.retry_late();
        self.flush();
        Ok(answered)
    }

    fn read_conn(&mut self, i: usize, done: &mut impl FnMut(u64, Status, &[u8])) -> usize {
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_mut() else { return 0 };
        if !c.readable {
            return 0;
        }
        let mut broken = match read_available(stream, &mut c.inbuf, usize::MAX, &mut self.scratch) {
            Link::Closed => true,
            Link::Drained => {
                c.readable = false;
                false
            }
            Link::Open => false,
        };
        let mut inbuf = std::mem::take(&mut self.conns[i].inbuf);
        let mut at = 0;
        let mut answered = 0;
        loop {
            match Reply::decode(&inbuf[at..]) {
                Ok(Some((r, n))) => {
                    answered += usize::from(self.answer(r, done));
                    at += n;
                }
                Ok(None) => break,
                Err(_) => {
                    broken = true; // a replica speaking another protocol
                    break;
                }
            }
        }
        inbuf.drain(..at);
        self.conns[i].inbuf = inbuf;
        if broken {
            self.drop_conn(i);
        }
        answered
    }

    /// Takes reply `r`; true if it answered an outstanding command.
    fn answer(&mut self, r: Reply<'_>, done: &mut impl FnMut(u64, Status, &[u8])) -> bool {
        let i = (r.seq % WINDOW_MAX) as usize;
        if !self.slots[i].in_use || self.slots[i].seq != r.seq {
            self.stats.late_replies += 1;
            return false;
        }
        if r.status == Status::Conflict {
            // opt-PSMR: conservatively now, unless it went there already.
            if self.slots[i].group != GROUP_ALL {
                self.stats.conflicts += 1;
                self.slots[i].group = GROUP_ALL;
                self.enqueue(r.seq);
            }
            return false;
        }
        self.slots[i].in_use = false;
        self.outstanding -= 1;
        self.stats.completed += 1;
        while self.lowest_open < self.next_seq
            && !self.slots[(self.lowest_open % WINDOW_MAX) as usize].in_use
        {
            self.lowest_open += 1;
        }
        done(r.seq, r.status, r.body);
        true
    }

    fn retry_late(&mut self) {
        let now = self.now;
        let late: Vec<u64> = self
            .slots
            .iter()
            .filter(|s| {
                s.in_use && s.sent_at.is_some_and(|t| now.duration_since(t) >= self.retry_after)
            })
            .map(|s| s.seq)
            .collect();
        if late.is_empty() {
            return;
        }
        // Through another replica: the entry point may be the one that failed.
        self.flush();
        self.rotate_entry();
        for seq in late {
            self.stats.retries += 1;
            self.enqueue(seq);
        }
    }
}

/// Why `submit` did not take a command.
#[derive(Debug, Error)]
pub enum SubmitError {
    #[error(transparent)]
    WindowFull(WindowFull),
    #[error(transparent)]
    Client(ClientError),
}
