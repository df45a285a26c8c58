//! A replica's front thread: the clients' TCP endpoint. It takes request batches from clients
//! and multicasts them to their groups (this process is a proposer of every ring), and writes
//! the workers' replies to the clients they are for.
//!
//! ```text
//! client -> replica: len u32 | kind u8 | body      kind 1: hello, body = client id u64
//!                                                  kind 2: request, body = group u32 | batch
//! replica -> client: replies back to back (`smr::request`)
//! ```
//!
//! A request the ring's proposal queue has no room for waits in its connection, which is read no
//! further until it went: clients feel the ring's flow control as TCP backpressure.
//!
//! With checkpoints, the front also multicasts the replicas' own checkpoint request to g_all
//! every interval (`smr::checkpoint`): each replica's front does, so checkpoints go on while any
//! replica runs; the client id `REPLICA_CLIENT` is theirs, and a client that says it is theirs is
//! refused.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::multiring::{MultiRingNode, MulticastError};
use crate::smr::ClientId;
use crate::smr::checkpoint::REPLICA_CLIENT;
use crate::smr::exec::GROUP_ALL;
use crate::smr::request::{BatchWriter, batch_client};

use super::replies::{FrontWaker, ReplyDrain};
use super::stream_io::{Link, SCRATCH_BYTES, read_available, write_available};

pub const KIND_HELLO: u8 = 1;
pub const KIND_REQUEST: u8 = 2;
/// The largest frame a client may send.
pub const FRAME_BYTES_MAX: usize = 1 << 20;

const LISTENER: Token = Token(usize::MAX);
pub(crate) const WAKER: Token = Token(usize::MAX - 1);

struct Conn {
    stream: TcpStream,
    client: Option<ClientId>,
    inbuf: Vec<u8>,
    /// Bytes of `inbuf` already handled.
    in_at: usize,
    out: Vec<u8>,
    out_at: usize,
    /// A request waits for room in its ring's proposal queue.
    stalled: bool,
    /// The socket may have bytes to read (readiness is edge-triggered: set by an event, cleared
    /// when a read finds nothing).
    readable: bool,
}

/// What the front thread did.
#[derive(Clone, Debug, Default)]
pub struct FrontStats {
    pub connections: u64,
    pub batches_multicast: u64,
    pub replies_written: u64,
    /// Replies for clients not connected here (they get them from another replica).
    pub replies_unroutable: u64,
    /// Connections closed for a malformed frame.
    pub malformed_frames: u64,
}

/// See the module docs.
pub struct Front {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    by_client: HashMap<ClientId, usize>,
    node: MultiRingNode,
    drains: Vec<ReplyDrain>,
    waker: Arc<FrontWaker>,
    stop: Arc<AtomicBool>,
    stats: FrontStats,
    scratch: Vec<u8>,
    /// With checkpoints: how often to request one, and when next.
    checkpoints: Option<(Duration, Instant)>,
    checkpoint_seq: u64,
}

impl Front {
    /// Listens on `address` (port 0: any) and registers a waker for the workers.
    pub fn bind(
        address: SocketAddr,
        node: MultiRingNode,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<(Front, Arc<FrontWaker>)> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(address)?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(FrontWaker::new(mio::Waker::new(poll.registry(), WAKER)?));
        let front = Front {
            poll,
            listener,
            conns: Vec::new(),
            by_client: HashMap::new(),
            node,
            drains: Vec::new(),
            waker: Arc::clone(&waker),
            stop,
            stats: FrontStats::default(),
            scratch: vec![0; SCRATCH_BYTES],
            checkpoints: None,
            checkpoint_seq: 0,
        };
        Ok((front, waker))
    }

    /// Requests a checkpoint every `interval`, the first one `interval` from now.
    pub fn request_checkpoints(&mut self, interval: Duration) {
        self.checkpoints = Some((interval, Instant::now() + interval));
    }

    fn request_checkpoint_if_due(&mut self) {
        let Some((interval, due)) = self.checkpoints else { return };
        let now = Instant::now();
        if now < due {
            return;
        }
        let mut w = BatchWriter::new(64);
        w.begin(REPLICA_CLIENT, self.checkpoint_seq);
        w.push(self.checkpoint_seq, b"checkpoint");
        self.checkpoint_seq += 1;
        match self.node.multicast(GROUP_ALL, Bytes::copy_from_slice(w.bytes())) {
            Ok(_) => self.checkpoints = Some((interval, now + interval)),
            // The ring is full: try again soon rather than wait a whole interval.
            Err(_) => self.checkpoints = Some((interval, now + Duration::from_millis(10))),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The workers' reply queues.
    pub fn add_drain(&mut self, drain: ReplyDrain) {
        self.drains.push(drain);
    }

    /// Serves until the stop flag is set; returns what it did and the process' rings.
    pub fn run(mut self) -> (FrontStats, MultiRingNode) {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::Acquire) {
            let busy = self
                .conns
                .iter()
                .flatten()
                .any(|c| c.stalled || (c.readable && c.inbuf.len() > c.in_at));
            let replies_waiting = self.waker.begin_wait(&self.drains);
            let timeout = Duration::from_millis(if replies_waiting {
                0
            } else if busy {
                1
            } else {
                20
            });
            let polled = self.poll.poll(&mut events, Some(timeout));
            self.waker.end_wait();
            if let Err(e) = polled
                && e.kind() != ErrorKind::Interrupted
            {
                eprintln!("ringsmr: replica front: poll failed: {e}");
                break;
            }
            for e in events.iter() {
                match e.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(i) => {
                        if let Some(Some(c)) = self.conns.get_mut(i) {
                            c.readable |= e.is_readable() || e.is_read_closed() || e.is_error();
                        }
                    }
                }
            }
            self.route_replies();
            for i in 0..self.conns.len() {
                self.serve(i);
            }
            self.request_checkpoint_if_due();
        }
        (self.stats, self.node)
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let slot = self.conns.iter().position(Option::is_none).unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if self.poll.registry().register(&mut stream, Token(slot), interest).is_err() {
                        continue;
                    }
                    self.stats.connections += 1;
                    self.conns[slot] = Some(Conn {
                        stream,
                        client: None,
                        inbuf: Vec::with_capacity(64 * 1024),
                        in_at: 0,
                        out: Vec::with_capacity(64 * 1024),
                        out_at: 0,
                        stalled: false,
                        readable: true,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("ringsmr: replica front: accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn route_replies(&mut self) {
        let (conns, by_client, stats) = (&mut self.conns, &self.by_client, &mut self.stats);
        for d in &mut self.drains {
            d.drain(|client, reply| {
                match by_client.get(&client).and_then(|&i| conns[i].as_mut()) {
                    Some(c) => {
                        c.out.extend_from_slice(reply);
                        stats.replies_written += 1;
                    }
                    None => stats.replies_unroutable += 1,
                }
            });
        }
    }

    /// Reads, handles and writes what connection `i` has.
    fn serve(&mut self, i: usize) {
        let Some(c) = self.conns[i].as_mut() else { return };
        let mut closed = false;
        if c.readable && !c.stalled {
            // Enough to work on; the rest stays in the socket.
            let limit = c.in_at + 4 * FRAME_BYTES_MAX;
            match read_available(&mut c.stream, &mut c.inbuf, limit, &mut self.scratch) {
                Link::Closed => closed = true,
                Link::Drained => c.readable = false,
                Link::Open => {}
            }
        }
        if self.handle_frames(i).is_err() {
            self.stats.malformed_frames += 1;
            closed = true;
        }
        let c = self.conns[i].as_mut().expect("still open");
        if write_available(&mut c.stream, &c.out, &mut c.out_at) == Link::Closed {
            closed = true;
        }
        if c.out_at == c.out.len() {
            c.out.clear();
            c.out_at = 0;
        }
        if closed {
            let mut c = self.conns[i].take().expect("still open");
            let _ = self.poll.registry().deregister(&mut c.stream);
            if let Some(client) = c.client {
                self.by_client.remove(&client);
            }
        }
    }

    /// Handles the whole frames connection `i` has read; `Err` on a malformed one.
    fn handle_frames(&mut self, i: usize) -> Result<(), ()> {
        let c = self.conns[i].as_mut().expect("open");
        c.stalled = false;
        loop {
            let rest = &c.inbuf[c.in_at..];
            if rest.len() < 4 {
                break;
            }
            let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            if len == 0 || len > FRAME_BYTES_MAX {
                return Err(());
            }
            if rest.len() < 4 + len {
                break;
            }
            let frame = &rest[4..4 + len];
            match frame[0] {
                KIND_HELLO if frame.len() == 9 => {
                    let client = u64::from_le_bytes(frame[1..9].try_into().expect("8 bytes"));
                    if client == REPLICA_CLIENT {
                        return Err(()); // the replicas' own id
                    }
                    c.client = Some(client);
                    self.by_client.insert(client, i);
                }
                KIND_REQUEST if frame.len() > 5 => {
                    // A client speaks for itself only (and never as the replicas' own id).
                    if c.client.is_none() || batch_client(&frame[5..]) != c.client {
                        return Err(());
                    }
                    let group = u32::from_le_bytes(frame[1..5].try_into().expect("4 bytes"));
                    let batch = Bytes::copy_from_slice(&frame[5..]);
                    match self.node.multicast(group, batch) {
                        Ok(_) => self.stats.batches_multicast += 1,
                        Err(MulticastError::Backpressure { .. }) => {
                            c.stalled = true;
                            break;
                        }
                        // A group this replica cannot multicast to: the client is misconfigured.
                        Err(MulticastError::Refused(_)) => return Err(()),
                    }
                }
                _ => return Err(()),
            }
            c.in_at += 4 + len;
        }
        if c.in_at == c.inbuf.len() {
            c.inbuf.clear();
            c.in_at = 0;
        } else if c.in_at > c.inbuf.len() / 2 {
            c.inbuf.drain(..c.in_at);
            c.in_at = 0;
        }
        Ok(())
    }
}
