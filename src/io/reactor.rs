//! The reactor: one per core, owning that core's sockets and buffers, with one of two backends behind
//! the same operations (accept, connect, stream receive and send, datagram receive and send, timers,
//! wake-ups). The backend is chosen once, at start-up: io_uring where the kernel grants it, epoll
//! otherwise (see [`Reactor::new`]).
//!
//! A driver uses it in a loop:
//!
//! ```text
//! loop {
//!     reactor.poll(timeout, &mut handler)?;   // completions -> Handler callbacks (received bytes, ...)
//!     ... drain the protocol core's actions, write frames with reactor.outbox(conn) ...
//!     reactor.flush();                        // queue a send for every outbox written to
//! }
//! ```
//!
//! Callbacks only hand input to the caller; they cannot send. Sending happens between polls, so every
//! send of one loop iteration goes to the kernel in one batch: epoll sends at `flush`, io_uring
//! submits them with the next `poll` (the one `io_uring_enter` that also waits).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use super::buffer::InBuf;
use super::epoll::EpollDriver;
use super::outbuf::OutBuf;
use super::socket::{MulticastOptions, SocketOptions};
use super::uring::UringDriver;
use super::waker::Waker;
use crate::chunks::CHUNK_BYTES;

/// A TCP connection of one reactor.
pub type ConnId = usize;
/// A listening socket of one reactor.
pub type ListenerId = usize;
/// A UDP (multicast) socket of one reactor.
pub type UdpId = usize;

/// What the reactor does with a connection after its driver saw newly received bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Keep receiving; what the driver left in the inbox waits for more bytes.
    Keep,
    /// The peer sent something it must not: close the connection.
    Close,
}

/// The reactor's callbacks into its driver.
pub trait Handler {
    /// A peer connected to one of our listeners.
    fn accepted(&mut self, conn: ConnId, peer: SocketAddr);
    /// Our `connect` completed.
    fn connected(&mut self, conn: ConnId);
    /// The connection is gone (peer closed, error, or connect failed); its id may be reused.
    fn closed(&mut self, conn: ConnId, cause: io::Error);
    /// New bytes arrived; `inbox` holds everything received and not taken yet. The driver takes whole
    /// frames out ([`InBuf::take`], sharing the buffer's memory) or drops bytes
    /// ([`InBuf::consume`]); a partial frame stays for the next receive.
    fn received(&mut self, conn: ConnId, inbox: &mut InBuf) -> Received;
    /// One datagram arrived on a UDP socket (sharing the receive buffer's memory).
    fn datagram(&mut self, udp: UdpId, datagram: Bytes);
    /// Another thread called [`Waker::wake`].
    fn woken(&mut self);
}

/// Bounds of one reactor, all allocated at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub conns_max: usize,
    /// Receive buffer chunk of a connection. A frame larger than this moves into a chunk of its
    /// own (see `InBuf::spare_mut`); the smaller the chunks, the less memory frames held by the
    /// driver keep from reuse, and the warmer the memory the next receive writes into.
    pub inbox_bytes: usize,
    /// Bytes of received frames the driver may hold at once (they stay in the chunks they arrived
    /// in): a connection's receive buffer allocates chunks for as much up front, and so does each
    /// UDP socket's.
    pub inbox_reserve_bytes: usize,
    /// Send buffer of a connection (each of its two halves).
    pub outbox_bytes: usize,
    /// Largest datagram.
    pub datagram_bytes_max: usize,
    pub socket: SocketOptions,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            conns_max: 64,
            inbox_bytes: CHUNK_BYTES,
            inbox_reserve_bytes: 0,
            outbox_bytes: 8 * 1024 * 1024,
            datagram_bytes_max: 64 * 1024,
            socket: SocketOptions::default(),
        }
    }
}

/// Which backend to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// io_uring when the kernel grants it, else epoll (with one log line naming the cause).
    Auto,
    Uring,
    Epoll,
}

impl BackendChoice {
    /// Reads `RINGSMR_IO` (`uring`, `epoll`, or unset for [`BackendChoice::Auto`]).
    pub fn from_env() -> Result<BackendChoice, IoError> {
        match std::env::var("RINGSMR_IO") {
            Err(_) => Ok(BackendChoice::Auto),
            Ok(v) => match v.as_str() {
                "" | "auto" => Ok(BackendChoice::Auto),
                "uring" | "io_uring" => Ok(BackendChoice::Uring),
                "epoll" => Ok(BackendChoice::Epoll),
                other => Err(IoError::BadBackendName(other.to_string())),
            },
        }
    }
}

/// Environment failures of the runtime, each naming its cause and fix.
#[derive(Debug, Error)]
pub enum IoError {
    #[error("RINGSMR_IO={0:?} is not a backend: use `uring` or `epoll` (or leave it unset)")]
    BadBackendName(String),
    #[error("io_uring unavailable ({0}); unset RINGSMR_IO=uring to fall back to epoll")]
    UringRefused(String),
    #[error("{what}: {source}")]
    Os {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl IoError {
    pub(crate) fn os(what: impl Into<String>, source: io::Error) -> IoError {
        IoError::Os { what: what.into(), source }
    }

    /// The address is in use (EADDRINUSE).
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, IoError::Os { source, .. } if source.kind() == io::ErrorKind::AddrInUse)
    }
}

/// One core's event loop over the backend chosen at start-up.
#[derive(Debug)]
pub enum Reactor {
    Uring(UringDriver),
    Epoll(EpollDriver),
}

macro_rules! dispatch {
    ($self:expr, $d:ident => $e:expr) => {
        match $self {
            Reactor::Uring($d) => $e,
            Reactor::Epoll($d) => $e,
        }
    };
}

impl Reactor {
    /// A reactor on the chosen backend. With [`BackendChoice::Auto`], a kernel that refuses io_uring
    /// (ENOSYS: too old or not built in; EPERM: seccomp or `kernel.io_uring_disabled`; ENOMEM:
    /// RLIMIT_MEMLOCK too small) gives an epoll reactor and one log line that says why.
    pub fn new(choice: BackendChoice, limits: Limits) -> Result<Reactor, IoError> {
        match choice {
            BackendChoice::Epoll => Ok(Reactor::Epoll(EpollDriver::new(limits)?)),
            BackendChoice::Uring => Ok(Reactor::Uring(UringDriver::new(limits)?)),
            BackendChoice::Auto => match UringDriver::new(limits) {
                Ok(d) => Ok(Reactor::Uring(d)),
                Err(IoError::UringRefused(cause)) => {
                    eprintln!("ringsmr: io_uring unavailable ({cause}); using epoll");
                    Ok(Reactor::Epoll(EpollDriver::new(limits)?))
                }
                Err(e) => Err(e),
            },
        }
    }

    /// `"io_uring"` or `"epoll"`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Reactor::Uring(_) => "io_uring",
            Reactor::Epoll(_) => "epoll",
        }
    }

    pub fn waker(&self) -> Waker {
        dispatch!(self, d => d.waker())
    }

    pub fn listen(&mut self, addr: SocketAddr) -> Result<ListenerId, IoError> {
        dispatch!(self, d => d.listen(addr))
    }

    /// The address a listener is bound to (useful with port 0).
    pub fn local_addr(&self, listener: ListenerId) -> io::Result<SocketAddr> {
        dispatch!(self, d => d.local_addr(listener))
    }

    /// Starts connecting; [`Handler::connected`] or [`Handler::closed`] follows.
    pub fn connect(&mut self, addr: SocketAddr) -> Result<ConnId, IoError> {
        dispatch!(self, d => d.connect(addr))
    }

    /// Closes a connection now; no callback follows for it.
    pub fn close(&mut self, conn: ConnId) {
        dispatch!(self, d => d.close(conn))
    }

    /// The send buffer of an open connection (`None` while connecting or after close).
    pub fn outbox(&mut self, conn: ConnId) -> Option<&mut OutBuf> {
        dispatch!(self, d => d.outbox(conn))
    }

    /// Adds a joined multicast socket; its datagrams arrive through [`Handler::datagram`].
    pub fn add_multicast(
        &mut self,
        opts: MulticastOptions,
        sock: SocketOptions,
    ) -> Result<UdpId, IoError> {
        let socket = super::socket::multicast_socket(opts, sock)
            .map_err(|e| IoError::os(format!("multicast socket for {}", opts.group), e))?;
        dispatch!(self, d => d.add_udp(socket))
    }

    /// Joins (`true`) or leaves (`false`) the multicast group of a socket added by
    /// [`Reactor::add_multicast`]; the socket keeps its port and stays registered either way.
    pub fn set_multicast_membership(
        &mut self,
        udp: UdpId,
        opts: &MulticastOptions,
        joined: bool,
    ) -> io::Result<()> {
        let socket = self.udp_socket(udp)?;
        super::socket::set_membership(socket2::SockRef::from(socket), opts, joined)
    }

    /// Sends one datagram now. UDP sends on a non-blocking socket complete at once (the kernel copies
    /// the datagram or drops it), so both backends issue them directly rather than holding a buffer per
    /// datagram in flight. A full socket buffer drops the datagram, which loss recovery (3.3.4) repairs.
    pub fn send_datagram(&mut self, udp: UdpId, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
        let socket = self.udp_socket(udp)?;
        socket2::SockRef::from(socket)
            .send_to_with_flags(bytes, &to.into(), libc::MSG_DONTWAIT)
            .map(|_| ())
    }

    /// Sends everything `datagram` holds as one datagram now (see [`Reactor::send_datagram`]), its
    /// shared regions from where they are, and empties it either way.
    pub fn send_datagram_from(
        &mut self,
        udp: UdpId,
        datagram: &mut OutBuf,
        to: SocketAddr,
    ) -> io::Result<()> {
        let socket = self.udp_socket(udp)?;
        let to = socket2::SockAddr::from(to);
        let sent = match datagram.prepare_send() {
            None => 0,
            Some(msg) => {
                let mut msg = *msg;
                msg.msg_name = to.as_ptr().cast_mut().cast();
                msg.msg_namelen = to.len();
                // SAFETY: `msg` points to `to` and to the iovecs and bytes of `datagram`, all of
                // which live, unchanged, until the call returns.
                unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_DONTWAIT) }
            }
        };
        datagram.clear();
        if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// The socket of `udp`, added by [`Reactor::add_multicast`].
    fn udp_socket(&self, udp: UdpId) -> io::Result<&UdpSocket> {
        dispatch!(self, d => d.udp_socket(udp))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such UDP socket"))
    }

    /// Waits for completions for at most `timeout` (forever with `None`) and hands them to `h`.
    pub fn poll(&mut self, timeout: Option<Duration>, h: &mut impl Handler) -> io::Result<()> {
        dispatch!(self, d => d.poll(timeout, h))
    }

    /// Starts sending everything written to outboxes since the last flush: at once (epoll), or in
    /// the next [`Reactor::poll`]'s single system call (io_uring). Call `poll` after it.
    pub fn flush(&mut self) {
        dispatch!(self, d => d.flush())
    }
}
