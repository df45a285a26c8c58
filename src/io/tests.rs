//! The two backends behave alike: the same script of connects, sends, receives and closes runs on
//! each over loopback TCP.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

#[derive(Default)]
struct Recorder {
    accepted: Vec<ConnId>,
    connected: Vec<ConnId>,
    closed: Vec<(ConnId, io::ErrorKind)>,
    bytes: Vec<u8>,
    woken: usize,
}

impl Handler for Recorder {
    fn accepted(&mut self, conn: ConnId, _peer: SocketAddr) {
        self.accepted.push(conn);
    }
    fn connected(&mut self, conn: ConnId) {
        self.connected.push(conn);
    }
    fn closed(&mut self, conn: ConnId, cause: io::Error) {
        self.closed.push((conn, cause.kind()));
    }
    fn received(&mut self, _conn: ConnId, inbox: &mut buffer::InBuf) -> Received {
        // Take whole 1000-byte "frames" only, to exercise partial frames.
        while inbox.filled().len() >= 1000 {
            let frame = inbox.take(1000);
            self.bytes.extend_from_slice(&frame);
        }
        Received::Keep
    }
    fn datagram(&mut self, _udp: UdpId, _datagram: bytes::Bytes) {}
    fn woken(&mut self) {
        self.woken += 1;
    }
}

fn poll_until(r: &mut Reactor, h: &mut Recorder, what: &str, done: impl Fn(&Recorder) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(h) {
        assert!(Instant::now() < deadline, "{}: timed out waiting for {what}", r.backend_name());
        r.poll(Some(Duration::from_millis(10)), h).unwrap();
        r.flush();
    }
}

fn limits() -> Limits {
    Limits { conns_max: 4, inbox_bytes: 64 * 1024, outbox_bytes: 256 * 1024, ..Limits::default() }
}

fn stream_script(choice: BackendChoice) {
    let mut r = Reactor::new(choice, limits()).unwrap();
    let mut h = Recorder::default();
    let l = r.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = r.local_addr(l).unwrap();
    let out = r.connect(addr).unwrap();
    assert!(r.outbox(out).is_none(), "no outbox before the connection is up");
    poll_until(&mut r, &mut h, "connect and accept", |h| {
        h.connected == [out] && h.accepted.len() == 1
    });
    let inbound = h.accepted[0];

    // 200 frames of 1000 bytes, more than the 64 KB receive buffer holds at once.
    let mut sent = Vec::new();
    for i in 0..200u32 {
        let frame: Vec<u8> = (0..1000u32).map(|j| (i * 7 + j) as u8).collect();
        while !r.outbox(out).unwrap().push(&frame) {
            r.flush();
            r.poll(Some(Duration::from_millis(1)), &mut h).unwrap();
        }
        sent.extend_from_slice(&frame);
    }
    r.flush();
    poll_until(&mut r, &mut h, "all bytes", |h| h.bytes.len() == sent.len());
    assert!(h.bytes == sent, "bytes arrive complete and in order");

    // A wake from another thread ends a poll that would otherwise wait forever.
    let waker = r.waker();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        waker.wake();
    });
    poll_until(&mut r, &mut h, "the wake", |h| h.woken >= 1);
    t.join().unwrap();

    // Closing one end is seen as end-of-stream at the other.
    r.close(out);
    poll_until(&mut r, &mut h, "the close", |h| !h.closed.is_empty());
    assert_eq!(h.closed, [(inbound, io::ErrorKind::UnexpectedEof)]);

    // A refused connect is reported as closed, not as a panic or a hang.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let c = r.connect(dead).unwrap();
    poll_until(&mut r, &mut h, "the refusal", |h| h.closed.len() == 2);
    assert_eq!(h.closed[1], (c, io::ErrorKind::ConnectionRefused));
}

#[test]
fn epoll_backend_streams_wakes_and_closes() {
    stream_script(BackendChoice::Epoll);
}

#[test]
fn uring_backend_streams_wakes_and_closes() {
    match Reactor::new(BackendChoice::Uring, limits()) {
        Ok(_) => stream_script(BackendChoice::Uring),
        // The suite must run where io_uring is refused too; the epoll test covers that machine.
        Err(IoError::UringRefused(cause)) => eprintln!("skipped: io_uring refused here: {cause}"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_bad_backend_name_names_the_variable() {
    let e = IoError::BadBackendName("kqueue".into()).to_string();
    assert!(e.contains("RINGSMR_IO") && e.contains("uring") && e.contains("epoll"), "{e}");
}

#[test]
fn refusals_name_cause_and_fix() {
    let cause = super::uring::refusal_cause(&io::Error::from_raw_os_error(libc::EPERM));
    assert!(cause.contains("seccomp") && cause.contains("io_uring_disabled"), "{cause}");
    let cause = super::uring::refusal_cause(&io::Error::from_raw_os_error(libc::ENOMEM));
    assert!(cause.contains("RLIMIT_MEMLOCK"), "{cause}");
}

#[test]
fn a_free_port_can_be_listened_on_while_a_copy_of_its_probe_lives() {
    let ports = socket::free_loopback_ports(7).unwrap();
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 7, "{ports:?}");
    // What a child forked between probing and binding holds: a socket bound the way a probe is.
    let copy = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    copy.set_reuse_address(true).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    copy.bind(&addr.into()).unwrap();
    let listener = socket::tcp_listener(addr, socket::SocketOptions::default());
    assert!(listener.is_ok(), "{listener:?}");
}
