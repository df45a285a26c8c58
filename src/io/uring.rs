//! The io_uring backend: every socket operation is a submission whose completion comes back with the
//! buffer it was lent, and all submissions of one loop iteration reach the kernel in one
//! `io_uring_enter` (thesis 3.5.9: CPU is the bottleneck at wire speed, so syscalls per packet matter).
//!
//! Buffers stay put while the kernel uses them: a connection's receive (and each UDP receive slot's)
//! goes into the spare tail of its [`InBuf`], its send (a SENDMSG of the iovecs and message header
//! the [`OutBuf`] keeps) reads the `sending` half of the OutBuf and the shared regions it holds,
//! and neither is touched until the completion arrives. A connection that closes with operations in
//! flight cancels them and keeps its slot (and so its buffers) until the last one completed.
//!
//! Why lent buffers, not provided buffers with multishot receive. A provided-buffer ring hands the
//! kernel fixed-size buffers to fill in the order it likes. On a TCP link a frame then straddles two
//! buffers and has to be copied to become one batch, and a buffer cannot go back to the ring while a
//! batch decoded from it is still held (acceptors keep decided batches until garbage collection,
//! 3.3.7), so the ring would have to be refilled with fresh chunks anyway: what lending the spare
//! tail of a chunked [`InBuf`] does, without the copies. For multicast datagrams, where multishot
//! would save a submission per datagram, taking every queued datagram after each completion (what
//! it would give) did not move M-Ring throughput (2,189 Mbit/s with it, 2,148 without;
//! `bench/RESULTS.md`, sixth session): a datagram's cost is in the kernel's sending and delivering
//! it.
//!
//! The ring is set up SINGLE_ISSUER with DEFER_TASKRUN (Linux 6.1+; older kernels get a plain
//! ring): the kernel runs completion work only when the owning thread asks for completions, in the
//! `io_uring_enter` that waits, instead of interrupting the thread whenever a socket becomes ready.
//! Sends queued by `flush` go to the kernel in that same call. Measured against a plain ring with a
//! submit per flush (U-Ring, 1 KB values, 5 alternating runs with the baseline, medians): 7,724
//! against 7,425 Mbit/s, efficiency 0.549 against 0.501 (`bench/RESULTS.md`, eighth session).
//!
//! Bounds: at most three operations per connection are in flight (connect, receive, send), plus one
//! accept per listener, `UDP_RECVS_PER_SOCKET` receives per UDP socket and the waker's poll. The rings
//! are sized above that sum, so the submission queue is never full and the completion queue never
//! overflows.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::Duration;

use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, Probe, opcode, squeue};
use socket2::{SockAddr, Socket};

use super::buffer::InBuf;
use super::outbuf::OutBuf;
use super::reactor::{ConnId, Handler, IoError, Limits, ListenerId, Received, UdpId};
use super::slots::Slots;
use super::socket::{configure_stream, tcp_listener, tcp_socket};
use super::waker::Waker;

const LISTENERS_MAX: usize = 8;
const UDPS_MAX: usize = 4;
const UDP_RECVS_PER_SOCKET: usize = 8;

const OP_WAKE: u64 = 1;
const OP_ACCEPT: u64 = 2;
const OP_CONNECT: u64 = 3;
const OP_RECV: u64 = 4;
const OP_SEND: u64 = 5;
const OP_UDP_RECV: u64 = 6;
const OP_CANCEL: u64 = 7;

/// user_data: operation in bits 56..64, sub-slot in 32..40, object id in 0..32.
fn user_data(op: u64, id: usize, sub: usize) -> u64 {
    (op << 56) | ((sub as u64) << 32) | id as u64
}

fn split(ud: u64) -> (u64, usize, usize) {
    (ud >> 56, ((ud >> 32) & 0xff) as usize, (ud & 0xffff_ffff) as usize)
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Connecting,
    Open,
    /// Closed by us or failed: waiting for its operations to complete before the slot is freed.
    Closing,
}

#[derive(Debug)]
struct Conn {
    socket: Socket,
    inbox: InBuf,
    outbox: OutBuf,
    state: State,
    recv_inflight: bool,
    send_inflight: bool,
    connect_inflight: bool,
    /// The address a connect in flight reads.
    connect_addr: Option<Box<SockAddr>>,
    dirty: bool,
}

impl Conn {
    fn inflight(&self) -> bool {
        self.recv_inflight || self.send_inflight || self.connect_inflight
    }
}

#[derive(Debug)]
struct Udp {
    socket: UdpSocket,
    /// One receive buffer per receive in flight (`UDP_RECVS_PER_SOCKET`); a datagram is taken out
    /// of it whole, sharing its memory.
    inboxes: Box<[InBuf]>,
}

pub struct UringDriver {
    ring: IoUring,
    conns: Slots<Conn>,
    listeners: Slots<Socket>,
    udps: Slots<Udp>,
    waker: Waker,
    limits: Limits,
    dirty: Vec<ConnId>,
    failed: Vec<(ConnId, io::Error)>,
    completions: Vec<(u64, i32)>,
    /// Whether the ring was enabled yet (see [`UringDriver::enable_here`]).
    enabled: bool,
}

impl std::fmt::Debug for UringDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringDriver").field("conns", &self.conns.ids().count()).finish()
    }
}

/// Why the kernel refused io_uring, in words an operator can act on.
pub(crate) fn refusal_cause(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => "ENOSYS: this kernel has no io_uring (Linux 5.11+ needed)".into(),
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "EPERM: seccomp or kernel.io_uring_disabled forbids it".into()
        }
        Some(libc::ENOMEM) => {
            "ENOMEM: RLIMIT_MEMLOCK too small for the rings; raise `ulimit -l`".into()
        }
        _ => format!("io_uring_setup: {e}"),
    }
}

impl UringDriver {
    pub fn new(limits: Limits) -> Result<UringDriver, IoError> {
        let inflight_max = 3 * limits.conns_max
            + LISTENERS_MAX
            + UDPS_MAX * UDP_RECVS_PER_SOCKET
            + 1
            // cancels of a closing connection
            + 3 * limits.conns_max;
        let entries = (inflight_max as u32).next_power_of_two().max(256);
        let (ring, enabled) = match IoUring::builder()
            .setup_cqsize(2 * entries)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_r_disabled()
            .build(entries)
        {
            Ok(ring) => (ring, false),
            // Before Linux 6.1 the kernel does not know DEFER_TASKRUN: a plain ring does the same
            // operations, with completions run whenever the thread enters the kernel.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let ring = IoUring::builder()
                    .setup_cqsize(2 * entries)
                    .build(entries)
                    .map_err(|e| IoError::UringRefused(refusal_cause(&e)))?;
                (ring, true)
            }
            Err(e) => return Err(IoError::UringRefused(refusal_cause(&e))),
        };
        if !ring.params().is_feature_ext_arg() {
            return Err(IoError::UringRefused(
                "the kernel lacks IORING_FEAT_EXT_ARG (Linux 5.11+ needed)".into(),
            ));
        }
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| IoError::UringRefused(format!("probing opcodes: {e}")))?;
        for (code, name) in [
            (opcode::Accept::CODE, "ACCEPT"),
            (opcode::Connect::CODE, "CONNECT"),
            (opcode::Recv::CODE, "RECV"),
            (opcode::SendMsg::CODE, "SENDMSG"),
            (opcode::PollAdd::CODE, "POLL_ADD"),
            (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        ] {
            if !probe.is_supported(code) {
                return Err(IoError::UringRefused(format!("the kernel lacks IORING_OP_{name}")));
            }
        }
        let waker = Waker::new().map_err(|e| IoError::os("eventfd", e))?;
        let mut d = UringDriver {
            ring,
            conns: Slots::with_capacity(limits.conns_max),
            listeners: Slots::with_capacity(LISTENERS_MAX),
            udps: Slots::with_capacity(UDPS_MAX),
            waker,
            limits,
            dirty: Vec::with_capacity(limits.conns_max),
            failed: Vec::with_capacity(limits.conns_max),
            completions: Vec::with_capacity(2 * entries as usize),
            enabled,
        };
        d.arm_waker();
        Ok(d)
    }

    /// Queues one submission. The rings are sized above every operation that can be in flight (see
    /// the module doc), so a full queue only means it was not submitted yet.
    fn push(&mut self, entry: squeue::Entry) {
        for _ in 0..2 {
            // SAFETY: every buffer and address an entry points to lives in a slot (a connection's
            // InBuf/OutBuf, a boxed SockAddr, a UDP receive slot's InBuf) that is neither freed nor
            // reallocated until the entry's completion arrived: conns keep their slot while
            // `inflight()`, an OutBuf never grows, and an InBuf changes chunks only when the next
            // receive is armed (and a chunk it lent out stays allocated while its handles live).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            self.enable_here();
            if let Err(e) = self.ring.submit() {
                eprintln!("ringsmr: io_uring submit: {e}");
            }
        }
        panic!("io_uring submission queue full although sized for every operation in flight");
    }

    fn arm_waker(&mut self) {
        let fd = self.waker.raw_fd();
        let entry = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(user_data(OP_WAKE, 0, 0));
        self.push(entry);
    }

    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    pub fn listen(&mut self, addr: SocketAddr) -> Result<ListenerId, IoError> {
        let socket = tcp_listener(addr, self.limits.socket)
            .map_err(|e| IoError::os(format!("listening on {addr}"), e))?;
        // io_uring hands an O_NONBLOCK socket's EAGAIN back to us instead of waiting for readiness.
        socket.set_nonblocking(false).map_err(|e| IoError::os("clearing O_NONBLOCK", e))?;
        let id = self.listeners.insert(socket).map_err(|_| {
            IoError::os("adding a listener", io::Error::other("too many listeners"))
        })?;
        self.arm_accept(id);
        Ok(id)
    }

    fn arm_accept(&mut self, id: ListenerId) {
        let Some(l) = self.listeners.get(id) else { return };
        let entry =
            opcode::Accept::new(Fd(l.as_raw_fd()), std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(user_data(OP_ACCEPT, id, 0));
        self.push(entry);
    }

    pub fn local_addr(&self, listener: ListenerId) -> io::Result<SocketAddr> {
        let l = self.listeners.get(listener).ok_or_else(|| io::Error::other("no such listener"))?;
        l.local_addr()?.as_socket().ok_or_else(|| io::Error::other("not an IP listener"))
    }

    fn new_conn(&self, socket: Socket, state: State) -> Conn {
        Conn {
            socket,
            inbox: InBuf::for_stream(&self.limits, state == State::Open),
            outbox: OutBuf::with_capacity(self.limits.outbox_bytes),
            state,
            recv_inflight: false,
            send_inflight: false,
            connect_inflight: false,
            connect_addr: None,
            dirty: false,
        }
    }

    pub fn connect(&mut self, addr: SocketAddr) -> Result<ConnId, IoError> {
        let socket = tcp_socket(addr, self.limits.socket)
            .map_err(|e| IoError::os(format!("socket for {addr}"), e))?;
        let mut conn = self.new_conn(socket, State::Connecting);
        let sockaddr = Box::new(SockAddr::from(addr));
        let entry = opcode::Connect::new(
            Fd(conn.socket.as_raw_fd()),
            sockaddr.as_ptr().cast(),
            sockaddr.len(),
        );
        conn.connect_addr = Some(sockaddr);
        conn.connect_inflight = true;
        let id = self.conns.insert(conn).map_err(|_| {
            IoError::os("adding a connection", io::Error::other("conns_max connections open"))
        })?;
        self.push(entry.build().user_data(user_data(OP_CONNECT, id, 0)));
        Ok(id)
    }

    pub fn close(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(conn) else { return };
        if c.state == State::Closing {
            return;
        }
        c.state = State::Closing;
        let ops = [
            (c.recv_inflight, OP_RECV),
            (c.send_inflight, OP_SEND),
            (c.connect_inflight, OP_CONNECT),
        ];
        // Shutting the socket down ends a blocked receive at once; the cancels cover the rest.
        let _ = c.socket.shutdown(std::net::Shutdown::Both);
        for (inflight, op) in ops {
            if inflight {
                let cancel = opcode::AsyncCancel::new(user_data(op, conn, 0))
                    .build()
                    .user_data(user_data(OP_CANCEL, conn, 0));
                self.push(cancel);
            }
        }
        self.free_if_idle(conn);
    }

    fn free_if_idle(&mut self, conn: ConnId) {
        if self.conns.get(conn).is_some_and(|c| c.state == State::Closing && !c.inflight()) {
            self.conns.remove(conn);
        }
    }

    pub fn outbox(&mut self, conn: ConnId) -> Option<&mut OutBuf> {
        let c = self.conns.get_mut(conn).filter(|c| c.state == State::Open)?;
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(conn);
        }
        Some(&mut c.outbox)
    }

    pub fn add_udp(&mut self, socket: UdpSocket) -> Result<UdpId, IoError> {
        // Blocking, so a receive waits in the kernel instead of completing with EAGAIN; sends pass
        // MSG_DONTWAIT (see `Reactor::send_datagram`).
        socket.set_nonblocking(false).map_err(|e| IoError::os("clearing O_NONBLOCK", e))?;
        let udp = Udp {
            socket,
            inboxes: (0..UDP_RECVS_PER_SOCKET)
                .map(|_| InBuf::for_datagrams(&self.limits, UDP_RECVS_PER_SOCKET))
                .collect(),
        };
        let id = self.udps.insert(udp).map_err(|_| {
            IoError::os("adding a UDP socket", io::Error::other("too many UDP sockets"))
        })?;
        for slot in 0..UDP_RECVS_PER_SOCKET {
            self.arm_udp_recv(id, slot);
        }
        Ok(id)
    }

    fn arm_udp_recv(&mut self, id: UdpId, slot: usize) {
        let size = self.limits.datagram_bytes_max;
        let Some(u) = self.udps.get_mut(id) else { return };
        let buf = u.inboxes[slot].datagram_room(size);
        let entry =
            opcode::Recv::new(Fd(u.socket.as_raw_fd()), buf.as_mut_ptr().cast(), size as u32)
                .build()
                .user_data(user_data(OP_UDP_RECV, id, slot));
        self.push(entry);
    }

    pub fn udp_socket(&self, udp: UdpId) -> Option<&UdpSocket> {
        self.udps.get(udp).map(|u| &u.socket)
    }

    fn arm_recv(&mut self, id: ConnId) -> Result<(), io::Error> {
        let Some(c) = self.conns.get_mut(id) else { return Ok(()) };
        if c.recv_inflight || c.state != State::Open {
            return Ok(());
        }
        let spare = c.inbox.spare_mut();
        if spare.is_empty() {
            return Err(io::Error::other("a frame larger than the receive buffer"));
        }
        let entry = opcode::Recv::new(
            Fd(c.socket.as_raw_fd()),
            spare.as_mut_ptr().cast(),
            spare.len() as u32,
        )
        .build()
        .user_data(user_data(OP_RECV, id, 0));
        c.recv_inflight = true;
        self.push(entry);
        Ok(())
    }

    fn arm_send(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(id) else { return };
        if c.send_inflight || c.state != State::Open {
            return;
        }
        let fd = c.socket.as_raw_fd();
        let Some(msg) = c.outbox.prepare_send() else { return };
        // Written bytes and shared regions in one message (see `outbuf`).
        let entry = opcode::SendMsg::new(Fd(fd), std::ptr::from_ref(msg))
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(user_data(OP_SEND, id, 0));
        c.send_inflight = true;
        self.push(entry);
    }

    /// Makes the calling thread the ring's one submitter. A reactor is built on one thread and
    /// driven by another (a node's thread), and a SINGLE_ISSUER ring belongs to the thread that
    /// enables it, so the ring starts disabled and the first flush or poll enables it. Only the
    /// driving thread submits: building the reactor queues a few entries, never a full ring.
    fn enable_here(&mut self) {
        if !self.enabled {
            self.enabled = true;
            if let Err(e) = self.ring.submitter().register_enable_rings() {
                eprintln!("ringsmr: io_uring: enabling the ring: {e}");
            }
        }
    }

    /// Queues a send for every connection written to since the last flush. They reach the kernel
    /// with the next poll's `io_uring_enter`, the one that waits: one system call per loop
    /// iteration instead of two.
    pub fn flush(&mut self) {
        self.enable_here();
        for i in 0..self.dirty.len() {
            let id = self.dirty[i];
            if let Some(c) = self.conns.get_mut(id) {
                c.dirty = false;
                self.arm_send(id);
            }
        }
        self.dirty.clear();
    }

    pub fn poll(&mut self, timeout: Option<Duration>, h: &mut impl Handler) -> io::Result<()> {
        self.enable_here();
        while let Some((id, e)) = self.failed.pop() {
            self.close(id);
            h.closed(id, e);
        }
        let waited = match timeout {
            Some(t) => {
                let ts = Timespec::new().sec(t.as_secs()).nsec(t.subsec_nanos());
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match waited {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => {
            }
            Err(e) => return Err(e),
        }
        self.completions.clear();
        for cqe in self.ring.completion() {
            self.completions.push((cqe.user_data(), cqe.result()));
        }
        for i in 0..self.completions.len() {
            let (ud, result) = self.completions[i];
            self.complete(ud, result, h);
        }
        Ok(())
    }

    fn complete(&mut self, ud: u64, result: i32, h: &mut impl Handler) {
        let (op, sub, id) = split(ud);
        match op {
            OP_WAKE => {
                self.waker.drain();
                self.arm_waker();
                h.woken();
            }
            OP_ACCEPT => self.accepted(id, result, h),
            OP_CONNECT => self.connected(id, result, h),
            OP_RECV => self.received(id, result, h),
            OP_SEND => self.sent(id, result, h),
            OP_UDP_RECV => self.datagram(id, sub, result, h),
            OP_CANCEL => {}
            _ => unreachable!("user_data carries one of the operations above"),
        }
    }

    fn accepted(&mut self, listener: ListenerId, result: i32, h: &mut impl Handler) {
        if result >= 0 {
            // SAFETY: a non-negative ACCEPT result is a new file descriptor the kernel just created
            // for us; nothing else owns it, so the Socket may own (and eventually close) it.
            let socket = unsafe { Socket::from_raw_fd(result as RawFd) };
            let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
            if let Err(e) = configure_stream(&socket, self.limits.socket) {
                eprintln!("ringsmr: configuring an accepted connection: {e}");
            }
            let conn = self.new_conn(socket, State::Open);
            match self.conns.insert(conn) {
                Ok(id) => {
                    let peer = peer.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                    match self.arm_recv(id) {
                        Ok(()) => h.accepted(id, peer),
                        Err(e) => eprintln!("ringsmr: accepted connection from {peer}: {e}"),
                    }
                }
                Err(_) => eprintln!("ringsmr: refusing a connection: conns_max connections open"),
            }
        } else if -result != libc::ECANCELED {
            eprintln!("ringsmr: accept: {}", io::Error::from_raw_os_error(-result));
        }
        self.arm_accept(listener);
    }

    fn connected(&mut self, id: ConnId, result: i32, h: &mut impl Handler) {
        let Some(c) = self.conns.get_mut(id) else { return };
        c.connect_inflight = false;
        c.connect_addr = None;
        if c.state == State::Closing {
            return self.free_if_idle(id);
        }
        if result < 0 {
            return self.fail(id, io::Error::from_raw_os_error(-result), h);
        }
        c.state = State::Open;
        match self.arm_recv(id) {
            Ok(()) => h.connected(id),
            Err(e) => self.fail(id, e, h),
        }
    }

    fn received(&mut self, id: ConnId, result: i32, h: &mut impl Handler) {
        let Some(c) = self.conns.get_mut(id) else { return };
        c.recv_inflight = false;
        if c.state == State::Closing {
            return self.free_if_idle(id);
        }
        match result {
            0 => return self.fail(id, io::ErrorKind::UnexpectedEof.into(), h),
            n if n < 0 && matches!(-n, libc::EINTR | libc::EAGAIN) => {}
            n if n < 0 => return self.fail(id, io::Error::from_raw_os_error(-n), h),
            n => {
                c.inbox.commit(n as usize);
                match h.received(id, &mut c.inbox) {
                    Received::Keep => {}
                    Received::Close => {
                        return self.fail(id, io::ErrorKind::InvalidData.into(), h);
                    }
                }
            }
        }
        if let Err(e) = self.arm_recv(id) {
            self.fail(id, e, h);
        }
    }

    fn sent(&mut self, id: ConnId, result: i32, h: &mut impl Handler) {
        let Some(c) = self.conns.get_mut(id) else { return };
        c.send_inflight = false;
        if c.state == State::Closing {
            return self.free_if_idle(id);
        }
        match result {
            n if n < 0 && matches!(-n, libc::EINTR | libc::EAGAIN) => {}
            n if n < 0 => return self.fail(id, io::Error::from_raw_os_error(-n), h),
            n => c.outbox.advance(n as usize),
        }
        self.arm_send(id);
    }

    fn datagram(&mut self, id: UdpId, slot: usize, result: i32, h: &mut impl Handler) {
        let Some(u) = self.udps.get_mut(id) else { return };
        if result >= 0 {
            let inbox = &mut u.inboxes[slot];
            inbox.commit(result as usize);
            h.datagram(id, inbox.take(result as usize));
        } else if !matches!(-result, libc::EAGAIN | libc::EINTR | libc::ECANCELED) {
            eprintln!("ringsmr: multicast receive: {}", io::Error::from_raw_os_error(-result));
        }
        self.arm_udp_recv(id, slot);
    }

    fn fail(&mut self, id: ConnId, e: io::Error, h: &mut impl Handler) {
        self.close(id);
        h.closed(id, e);
    }
}
