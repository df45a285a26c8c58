//! The raw transport a protocol run is compared with (`--baseline`), measured on the same backend,
//! the same loopback and the same number of processes just before the protocol runs:
//!
//! - U-Ring Paxos: a TCP ring of `n` reactors; the first writes 32 KB buffers as fast as its link
//!   takes them, each next one forwards what it receives, the last counts. Every byte crosses the
//!   same n-1 links a value crosses on its way around a U-Ring.
//! - M-Ring Paxos: one sender ip-multicasts 8 KB datagrams (thesis 3.5.6) as fast as the kernel takes
//!   them; the other `n-1` receive, and the figure is the mean of what they received.
//!
//! Each stage is a thread with its own reactor, like a node.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::io::socket::MulticastOptions;
use crate::io::{BackendChoice, ConnId, Handler, Limits, Reactor, Received, UdpId};

const RING_BUFFER_BYTES: usize = 32 * 1024;
const DATAGRAM_BYTES: usize = 8 * 1024;

/// Counts (and, on a forwarding stage, stages for sending) what arrives.
struct Stage {
    received_bytes: u64,
    staged: Vec<u8>,
    forward: bool,
}

impl Handler for Stage {
    fn accepted(&mut self, _: ConnId, _: SocketAddr) {}
    fn connected(&mut self, _: ConnId) {}
    fn closed(&mut self, _: ConnId, _: io::Error) {}
    fn received(&mut self, _: ConnId, bytes: &[u8]) -> Received {
        self.received_bytes += bytes.len() as u64;
        if self.forward {
            // Bytes beyond the staging room are dropped (counted as received, not forwarded): the
            // next stage then simply sees less, which is what a slow relay means.
            let room = self.staged.capacity() - self.staged.len();
            self.staged.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        Received::Consumed(bytes.len())
    }
    fn datagram(&mut self, _: UdpId, bytes: &[u8]) {
        self.received_bytes += bytes.len() as u64;
    }
    fn woken(&mut self) {}
}

fn limits() -> Limits {
    Limits { conns_max: 4, ..Limits::default() }
}

/// Mbit/s arriving at the last of `n` reactors chained by TCP.
pub fn tcp_ring(backend: BackendChoice, n: usize, duration: Duration) -> io::Result<f64> {
    let n = n.max(2);
    let mut reactors = Vec::with_capacity(n);
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let mut r = Reactor::new(backend, limits()).map_err(io::Error::other)?;
        let l = r.listen("127.0.0.1:0".parse().expect("literal")).map_err(io::Error::other)?;
        addrs.push(r.local_addr(l)?);
        reactors.push(r);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sink_bytes = Arc::new(AtomicU64::new(0));
    let cores = crate::io::pin::allowed_cores();
    let mut threads = Vec::new();
    for (i, mut r) in reactors.into_iter().enumerate() {
        let next = addrs.get(i + 1).copied();
        let stop = Arc::clone(&stop);
        let sink_bytes = Arc::clone(&sink_bytes);
        let core = cores[i % cores.len()];
        threads.push(std::thread::spawn(move || -> io::Result<()> {
            let _ = crate::io::pin::pin_current_thread(core);
            let out = match next {
                Some(a) => Some(r.connect(a).map_err(io::Error::other)?),
                None => None,
            };
            let mut stage =
                Stage { received_bytes: 0, staged: Vec::with_capacity(8 << 20), forward: i > 0 };
            let chunk = vec![0x5a; RING_BUFFER_BYTES];
            while !stop.load(Ordering::Relaxed) {
                r.poll(Some(Duration::from_millis(1)), &mut stage)?;
                if let Some(box_) = out.and_then(|c| r.outbox(c)) {
                    if i == 0 {
                        while box_.push(&chunk) {}
                    } else {
                        let k = stage.staged.len().min(box_.free_bytes());
                        box_.push(&stage.staged[..k]);
                        stage.staged.drain(..k);
                    }
                }
                r.flush();
                if next.is_none() {
                    sink_bytes.store(stage.received_bytes, Ordering::Relaxed);
                }
            }
            Ok(())
        }));
    }
    measure(duration, &stop, threads, || sink_bytes.load(Ordering::Relaxed))
}

/// Mean Mbit/s `n - 1` receivers get of one sender's 8 KB multicast datagrams.
pub fn multicast(
    backend: BackendChoice,
    n: usize,
    group: MulticastOptions,
    duration: Duration,
) -> io::Result<f64> {
    let receivers = n.max(2) - 1;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let cores = crate::io::pin::allowed_cores();
    let mut threads = Vec::new();
    for i in 0..=receivers {
        let mut r = Reactor::new(backend, limits()).map_err(io::Error::other)?;
        let udp = r.add_multicast(group, limits().socket).map_err(io::Error::other)?;
        let stop = Arc::clone(&stop);
        let received = Arc::clone(&received);
        let core = cores[i % cores.len()];
        threads.push(std::thread::spawn(move || -> io::Result<()> {
            let _ = crate::io::pin::pin_current_thread(core);
            let mut stage = Stage { received_bytes: 0, staged: Vec::new(), forward: false };
            let datagram = vec![0x5a; DATAGRAM_BYTES];
            let to = SocketAddr::V4(group.group);
            let mut counted = 0;
            while !stop.load(Ordering::Relaxed) {
                if i == 0 {
                    for _ in 0..64 {
                        if r.send_datagram(udp, &datagram, to).is_err() {
                            break; // socket buffer full: let the receivers catch up
                        }
                    }
                    r.poll(Some(Duration::ZERO), &mut stage)?;
                } else {
                    r.poll(Some(Duration::from_millis(1)), &mut stage)?;
                    received.fetch_add(stage.received_bytes - counted, Ordering::Relaxed);
                    counted = stage.received_bytes;
                }
            }
            Ok(())
        }));
    }
    let total = measure(duration, &stop, threads, || received.load(Ordering::Relaxed))?;
    Ok(total / receivers as f64)
}

/// Lets the stages run for `duration` after a short warm-up and returns the Mbit/s of `bytes()`.
fn measure(
    duration: Duration,
    stop: &AtomicBool,
    threads: Vec<std::thread::JoinHandle<io::Result<()>>>,
    bytes: impl Fn() -> u64,
) -> io::Result<f64> {
    std::thread::sleep(Duration::from_millis(200));
    let (t0, b0) = (Instant::now(), bytes());
    std::thread::sleep(duration);
    let (secs, b1) = (t0.elapsed().as_secs_f64(), bytes());
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| io::Error::other("a baseline stage panicked"))??;
    }
    Ok((b1 - b0) as f64 * 8.0 / secs / 1e6)
}
