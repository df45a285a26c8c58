//! The epoll backend (through mio): readiness turned into the same completions the io_uring backend
//! produces. Used where io_uring is refused, and forced with `RINGSMR_IO=epoll`.
//!
//! Edge-triggered: on readiness we read (or write) until the kernel says `WouldBlock`, so no edge is
//! lost. Every socket is registered for both directions once; nothing is re-registered per operation.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream, UdpSocket as MioUdp};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use socket2::SockRef;

use super::buffer::InBuf;
use super::outbuf::OutBuf;
use super::reactor::{ConnId, Handler, IoError, Limits, ListenerId, Received, UdpId};
use super::slots::Slots;
use super::socket::{configure_stream, tcp_listener, tcp_socket};
use super::waker::Waker;

const KIND_SHIFT: usize = 32;
const KIND_WAKER: usize = 0;
const KIND_LISTENER: usize = 1;
const KIND_CONN: usize = 2;
const KIND_UDP: usize = 3;

fn token(kind: usize, id: usize) -> Token {
    Token((kind << KIND_SHIFT) | id)
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    inbox: InBuf,
    outbox: OutBuf,
    connecting: bool,
    /// In the flush list already.
    dirty: bool,
}

#[derive(Debug)]
pub struct EpollDriver {
    poll: Poll,
    events: Events,
    conns: Slots<Conn>,
    listeners: Slots<TcpListener>,
    udps: Slots<MioUdp>,
    /// Std views of the UDP sockets, for `send_to` (same fds).
    udp_std: Slots<UdpSocket>,
    waker: Waker,
    limits: Limits,
    /// Where datagrams are received, each taken out whole (sharing its memory).
    datagrams: InBuf,
    /// Connections with bytes written since the last flush.
    dirty: Vec<ConnId>,
    /// Connections that failed while flushing, reported at the next poll.
    failed: Vec<(ConnId, io::Error)>,
}

impl EpollDriver {
    pub fn new(limits: Limits) -> Result<EpollDriver, IoError> {
        let poll = Poll::new().map_err(|e| IoError::os("epoll_create", e))?;
        let waker = Waker::new().map_err(|e| IoError::os("eventfd", e))?;
        poll.registry()
            .register(&mut SourceFd(&waker.raw_fd()), token(KIND_WAKER, 0), Interest::READABLE)
            .map_err(|e| IoError::os("registering the waker", e))?;
        Ok(EpollDriver {
            poll,
            events: Events::with_capacity(1024),
            conns: Slots::with_capacity(limits.conns_max),
            listeners: Slots::with_capacity(8),
            udps: Slots::with_capacity(8),
            udp_std: Slots::with_capacity(8),
            waker,
            limits,
            datagrams: InBuf::for_datagrams(&limits, 1),
            dirty: Vec::with_capacity(limits.conns_max),
            failed: Vec::with_capacity(limits.conns_max),
        })
    }

    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    pub fn listen(&mut self, addr: SocketAddr) -> Result<ListenerId, IoError> {
        let socket = tcp_listener(addr, self.limits.socket)
            .map_err(|e| IoError::os(format!("listening on {addr}"), e))?;
        let mut listener = TcpListener::from_std(socket.into());
        let id = self.listeners.free_id().ok_or_else(|| {
            IoError::os("adding a listener", io::Error::other("too many listeners"))
        })?;
        self.poll
            .registry()
            .register(&mut listener, token(KIND_LISTENER, id), Interest::READABLE)
            .map_err(|e| IoError::os("registering a listener", e))?;
        self.listeners.put(id, listener);
        Ok(id)
    }

    pub fn local_addr(&self, listener: ListenerId) -> io::Result<SocketAddr> {
        self.listeners
            .get(listener)
            .ok_or_else(|| io::Error::other("no such listener"))?
            .local_addr()
    }

    pub fn connect(&mut self, addr: SocketAddr) -> Result<ConnId, IoError> {
        let socket = tcp_socket(addr, self.limits.socket)
            .map_err(|e| IoError::os(format!("socket for {addr}"), e))?;
        socket.set_nonblocking(true).map_err(|e| IoError::os("O_NONBLOCK", e))?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(IoError::os(format!("connecting to {addr}"), e)),
        }
        let stream = TcpStream::from_std(socket.into());
        self.add_conn(stream, true)
    }

    fn add_conn(&mut self, mut stream: TcpStream, connecting: bool) -> Result<ConnId, IoError> {
        let id = self.conns.free_id().ok_or_else(|| {
            IoError::os("adding a connection", io::Error::other("conns_max connections open"))
        })?;
        self.poll
            .registry()
            .register(&mut stream, token(KIND_CONN, id), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| IoError::os("registering a connection", e))?;
        let conn = Conn {
            stream,
            inbox: InBuf::for_stream(&self.limits, !connecting),
            outbox: OutBuf::with_capacity(self.limits.outbox_bytes),
            connecting,
            dirty: false,
        };
        self.conns.put(id, conn);
        Ok(id)
    }

    pub fn close(&mut self, conn: ConnId) {
        if let Some(mut c) = self.conns.remove(conn) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    pub fn outbox(&mut self, conn: ConnId) -> Option<&mut OutBuf> {
        let c = self.conns.get_mut(conn).filter(|c| !c.connecting)?;
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(conn);
        }
        Some(&mut c.outbox)
    }

    pub fn add_udp(&mut self, socket: UdpSocket) -> Result<UdpId, IoError> {
        let std_view = socket.try_clone().map_err(|e| IoError::os("dup of a UDP socket", e))?;
        let mut mio_socket = MioUdp::from_std(socket);
        let id = self.udps.free_id().ok_or_else(|| {
            IoError::os("adding a UDP socket", io::Error::other("too many UDP sockets"))
        })?;
        self.poll
            .registry()
            .register(&mut mio_socket, token(KIND_UDP, id), Interest::READABLE)
            .map_err(|e| IoError::os("registering a UDP socket", e))?;
        self.udps.put(id, mio_socket);
        self.udp_std.put(id, std_view);
        Ok(id)
    }

    pub fn udp_socket(&self, udp: UdpId) -> Option<&UdpSocket> {
        self.udp_std.get(udp)
    }

    pub fn flush(&mut self) {
        for i in 0..self.dirty.len() {
            let id = self.dirty[i];
            if let Some(c) = self.conns.get_mut(id) {
                c.dirty = false;
                if let Err(e) = write_out(c) {
                    self.failed.push((id, e));
                }
            }
        }
        self.dirty.clear();
    }

    pub fn poll(&mut self, timeout: Option<Duration>, h: &mut impl Handler) -> io::Result<()> {
        while let Some((id, e)) = self.failed.pop() {
            self.close(id);
            h.closed(id, e);
        }
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        // Events borrow `self.events`; take it out for the loop so handlers can use `self`.
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            let Token(t) = event.token();
            let (kind, id) = (t >> KIND_SHIFT, t & ((1 << KIND_SHIFT) - 1));
            match kind {
                KIND_WAKER => {
                    self.waker.drain();
                    h.woken();
                }
                KIND_LISTENER => self.accept_all(id, h),
                KIND_CONN => {
                    self.conn_ready(id, event.is_readable() || event.is_read_closed(), h);
                    if event.is_writable() || event.is_error() {
                        self.conn_writable(id, h);
                    }
                }
                KIND_UDP => self.receive_datagrams(id, h),
                _ => unreachable!("token kinds are the four above"),
            }
        }
        self.events = events;
        Ok(())
    }

    fn accept_all(&mut self, listener: ListenerId, h: &mut impl Handler) {
        loop {
            let Some(l) = self.listeners.get(listener) else { return };
            match l.accept() {
                Ok((stream, peer)) => {
                    let socket = socket2::SockRef::from(&stream);
                    if let Err(e) = configure_stream(&socket, self.limits.socket) {
                        eprintln!("ringsmr: configuring a connection from {peer}: {e}");
                    }
                    match self.add_conn(stream, false) {
                        Ok(id) => h.accepted(id, peer),
                        Err(e) => eprintln!("ringsmr: refusing {peer}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: keep serving the connections we have.
                    eprintln!("ringsmr: accept: {e}");
                    return;
                }
            }
        }
    }

    fn conn_ready(&mut self, id: ConnId, readable: bool, h: &mut impl Handler) {
        if !readable {
            return;
        }
        let Some(c) = self.conns.get_mut(id) else { return };
        if c.connecting {
            return; // the writable side reports the outcome of connect first
        }
        loop {
            let spare = c.inbox.spare_mut();
            if spare.is_empty() {
                self.fail(id, io::Error::other("a frame larger than the receive buffer"), h);
                return;
            }
            match SockRef::from(&c.stream).recv(spare) {
                Ok(0) => {
                    self.fail(id, io::ErrorKind::UnexpectedEof.into(), h);
                    return;
                }
                Ok(n) => {
                    c.inbox.commit(n);
                    match h.received(id, &mut c.inbox) {
                        Received::Keep => {}
                        Received::Close => {
                            self.fail(id, io::ErrorKind::InvalidData.into(), h);
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(id, e, h);
                    return;
                }
            }
        }
    }

    fn conn_writable(&mut self, id: ConnId, h: &mut impl Handler) {
        let Some(c) = self.conns.get_mut(id) else { return };
        if c.connecting {
            match c.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.fail(id, e, h),
            }
            match c.stream.peer_addr() {
                Ok(_) => {
                    c.connecting = false;
                    h.connected(id);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {} // not yet
                Err(e) => self.fail(id, e, h),
            }
            return;
        }
        if let Err(e) = write_out(c) {
            self.fail(id, e, h);
        }
    }

    fn fail(&mut self, id: ConnId, e: io::Error, h: &mut impl Handler) {
        self.close(id);
        h.closed(id, e);
    }

    fn receive_datagrams(&mut self, id: UdpId, h: &mut impl Handler) {
        let Some(socket) = self.udps.get(id) else { return };
        loop {
            let room = self.datagrams.datagram_room(self.limits.datagram_bytes_max);
            match SockRef::from(socket).recv(room) {
                Ok(n) => {
                    self.datagrams.commit(n);
                    h.datagram(id, self.datagrams.take(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("ringsmr: multicast receive: {e}");
                    return;
                }
            }
        }
    }
}

/// Writes as much of the outbox as the socket takes, written bytes and shared regions in one
/// `sendmsg` at a time.
fn write_out(c: &mut Conn) -> io::Result<()> {
    let fd = c.stream.as_raw_fd();
    loop {
        let Some(msg) = c.outbox.prepare_send() else { return Ok(()) };
        // SAFETY: `msg` and the iovecs and bytes it points to belong to the outbox and stay as they
        // are during the call; MSG_NOSIGNAL turns a closed peer into EPIPE instead of SIGPIPE.
        let sent = unsafe { libc::sendmsg(fd, msg, libc::MSG_NOSIGNAL) };
        match usize::try_from(sent) {
            Ok(n) => c.outbox.advance(n),
            Err(_) => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(()),
                    io::ErrorKind::Interrupted => {}
                    _ => return Err(e),
                }
            }
        }
    }
}
