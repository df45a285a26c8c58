//! Socket set-up shared by both backends (thesis 3.5.7: socket buffer sizes decide how much a burst
//! can be absorbed before packets are lost or TCP windows close).
//!
//! TCP ring links get `TCP_NODELAY` (a batch is one write; Nagle would only delay it) and large
//! `SO_SNDBUF`/`SO_RCVBUF`. The kernel silently clamps those to `net.core.wmem_max`/`rmem_max`; we
//! read the sizes back and warn once per process, naming the sysctl to raise.
//!
//! Multicast sockets (M-Ring Paxos) bind the group's port with `SO_REUSEADDR`, so several processes on
//! one host can all receive the group, join the group on the configured interface, and enable
//! `IP_MULTICAST_LOOP` so processes on the sending host receive it too.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

/// Socket options every link uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketOptions {
    /// Requested `SO_SNDBUF` and `SO_RCVBUF`.
    pub buffer_bytes: usize,
}

impl Default for SocketOptions {
    fn default() -> SocketOptions {
        SocketOptions { buffer_bytes: 4 * 1024 * 1024 }
    }
}

static CLAMP_WARNED: AtomicBool = AtomicBool::new(false);

/// Sets the buffer sizes of `socket` and warns (once per process) when the kernel clamped them.
pub fn set_buffers(socket: &Socket, opts: SocketOptions) -> io::Result<()> {
    socket.set_send_buffer_size(opts.buffer_bytes)?;
    socket.set_recv_buffer_size(opts.buffer_bytes)?;
    // Linux reports twice the size it accepted (the other half is its bookkeeping).
    let send = socket.send_buffer_size()? / 2;
    let recv = socket.recv_buffer_size()? / 2;
    if (send < opts.buffer_bytes || recv < opts.buffer_bytes)
        && !CLAMP_WARNED.swap(true, Ordering::Relaxed)
    {
        eprintln!(
            "ringsmr: warning: the kernel clamped socket buffers to {send} B (send) / {recv} B \
             (receive) of the {} B asked: raise net.core.wmem_max and net.core.rmem_max to at least \
             {} (tuning/apply.sh does), or lower socket_buffer_bytes",
            opts.buffer_bytes, opts.buffer_bytes
        );
    }
    Ok(())
}

/// Options of a connected TCP ring link.
pub fn configure_stream(socket: &Socket, opts: SocketOptions) -> io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    set_buffers(socket, opts)
}

/// A listening TCP socket, non-blocking.
pub fn tcp_listener(addr: SocketAddr, opts: SocketOptions) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    // Accepted sockets inherit the receive buffer size, which must be set before listen so the
    // window scale negotiated in the handshake can use it.
    set_buffers(&socket, opts)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// `count` distinct TCP ports of 127.0.0.1 that nothing uses now. Each is found by binding a socket
/// that allows address reuse and does not listen, so a listener (which allows reuse too) can still
/// bind the port while a copy of the probe lives on. Such copies happen: a thread of this process
/// that spawns a program forks, and until the child execs it holds every socket the process had
/// open, so a listening probe closed meanwhile kept its port for a moment (a cluster test failed
/// to bind its first node's port about one run in 30, with the probes still listed as listening).
pub fn free_loopback_ports(count: usize) -> io::Result<Vec<u16>> {
    let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let probes = (0..count)
        .map(|_| {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.bind(&SockAddr::from(any))?;
            Ok(socket)
        })
        .collect::<io::Result<Vec<_>>>()?;
    probes
        .iter()
        .map(|s| {
            s.local_addr()?
                .as_socket()
                .map(|a| a.port())
                .ok_or_else(|| io::Error::other("a probe bound to a non-IP address"))
        })
        .collect()
}

/// An unconnected TCP socket with the link options set, ready for `connect`.
pub fn tcp_socket(addr: SocketAddr, opts: SocketOptions) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    configure_stream(&socket, opts)?;
    Ok(socket)
}

/// Where and how an M-Ring cluster multicasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticastOptions {
    pub group: SocketAddrV4,
    /// The interface to send from and join on (its IPv4 address).
    pub interface: Ipv4Addr,
    pub ttl: u32,
    /// Receive our own datagrams' copies on the sending host (needed when processes share a host).
    pub loopback: bool,
}

/// Joins (`true`) or leaves (`false`) `opts.group` on `opts.interface`; an error names the group,
/// the interface and what to check.
pub fn set_membership(
    socket: SockRef<'_>,
    opts: &MulticastOptions,
    joined: bool,
) -> io::Result<()> {
    let (verb, done) = if joined {
        ("joining", socket.join_multicast_v4(opts.group.ip(), &opts.interface))
    } else {
        ("leaving", socket.leave_multicast_v4(opts.group.ip(), &opts.interface))
    };
    done.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{verb} multicast group {} on interface {}: {e} (on loopback: \
                 `ip link set lo multicast on`)",
                opts.group.ip(),
                opts.interface
            ),
        )
    })
}

/// A non-blocking UDP socket that has joined `opts.group` and sends to it.
pub fn multicast_socket(opts: MulticastOptions, sock: SocketOptions) -> io::Result<UdpSocket> {
    if !opts.group.ip().is_multicast() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a multicast address (224.0.0.0/4)", opts.group.ip()),
        ));
    }
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    set_buffers(&socket, sock)?;
    socket.bind(&SockAddr::from(SocketAddrV4::new(*opts.group.ip(), opts.group.port())))?;
    set_membership(SockRef::from(&socket), &opts, true)?;
    socket.set_multicast_if_v4(&opts.interface)?;
    socket.set_multicast_ttl_v4(opts.ttl)?;
    socket.set_multicast_loop_v4(opts.loopback)?;
    // Linux's default (IP_MULTICAST_ALL) hands a socket bound to the group's address the group's
    // datagrams whenever any socket on the host has joined it, so leaving the group would change
    // nothing. Off, a socket receives exactly the groups it is in (see `node::multicast_link`).
    socket.set_multicast_all_v4(false)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
