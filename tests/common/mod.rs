//! What the process-level tests share: the binary under test, free loopback ports, and guards that
//! leave no process or scratch directory behind when a test fails.

// Each test crate that declares `mod common;` uses only some of these.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc::{Receiver, channel};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringsmr");

/// `n` loopback ports that were free a moment ago.
pub fn free_ports(n: usize) -> Vec<u16> {
    // A node derives its control and snapshot ports from its data port (+1000, +2000): no port
    // handed out may be another's derived one, or a cluster file built from them is refused
    // (it happened: `node[0].snapshot` equal to node 1's address).
    let clash =
        |a: u16, b: u16| [0i32, 1000, 2000, -1000, -2000].contains(&(i32::from(a) - i32::from(b)));
    let mut held = Vec::new();
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < n {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if !ports.iter().any(|&q| clash(port, q)) {
            ports.push(port);
        }
        held.push(l);
    }
    ports
}

/// `n` loopback ports that were free a moment ago, below the kernel's ephemeral range (from
/// 32768 by default): a node that is restarted must bind its port again, and a port the kernel
/// also hands out to outgoing connections may be some link's local end by then.
pub fn free_ports_for_restarts(n: usize) -> Vec<u16> {
    // Start where this test process' pid points, so concurrent test processes rarely probe the
    // same ports, and past the ports earlier calls of this process took: a probe only sees that a
    // port is free, not that another test of this process is about to bind it.
    static TAKEN: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let skip = TAKEN.fetch_add(64, std::sync::atomic::Ordering::Relaxed);
    let mut ports = Vec::with_capacity(n);
    let mut port = 20_000 + ((std::process::id() as u16).wrapping_add(skip) % 10_000);
    while ports.len() < n {
        port = if port >= 31_000 { 20_000 } else { port + 1 };
        // The data port, and the control and snapshot ports a node derives from it.
        let free = [port, port + 1000, port + 2000]
            .iter()
            .all(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            ports.push(port);
        }
    }
    ports
}

/// The lines `from` prints (a child's stdout or stderr), read on a thread of their own so a test
/// can wait for one with a timeout.
pub fn lines_of(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A 3-node cluster file on loopback: f = 1, every node acceptor, proposer and learner, node `i`
/// at `data_ports[i]` (and, when given, its control endpoint at `control_ports[i]`). M-Ring gets 8 KB
/// batches and the multicast group `239.255.82.<group_octet>:<multicast_port>`, so concurrent
/// tests use different groups.
pub fn three_node_cluster_toml(
    cluster_id: u32,
    protocol: &str,
    data_ports: &[u16],
    control_ports: Option<&[u16]>,
    (group_octet, multicast_port): (u8, u16),
) -> String {
    let mut s =
        format!("cluster_id = {cluster_id}\nprotocol = \"{protocol}\"\nf = 1\nring = [0, 1, 2]\n");
    if protocol == "mring" {
        s += "batch_bytes = 8192\n";
        s += &format!(
            "[multicast]\ngroup = \"239.255.82.{group_octet}:{multicast_port}\"\ninterface = \"127.0.0.1\"\n"
        );
    }
    for (id, port) in data_ports.iter().take(3).enumerate() {
        s += &format!("[[node]]\nid = {id}\naddress = \"127.0.0.1:{port}\"\n");
        if let Some(control) = control_ports {
            s += &format!("control = \"127.0.0.1:{}\"\n", control[id]);
        }
        s += "roles = [\"acceptor\", \"proposer\", \"learner\"]\n";
    }
    s
}

/// The processes a test started; each is stopped (by its pid) and reaped on drop, so a failing
/// test leaves none running. A slot is `None` once the test took the child itself.
///
/// While the test thread is panicking the nodes first get SIGTERM and a moment to print their
/// counters on the way out (`ringsmr node` does on SIGTERM), which is what tells a stalled run from
/// a slow one; after that, or at once when the test passed, SIGKILL.
#[derive(Default)]
pub struct Children(pub Vec<Option<Child>>);

/// How long a failed test's nodes get to print their counters.
const LAST_WORDS: std::time::Duration = std::time::Duration::from_secs(2);

impl Children {
    pub fn push(&mut self, child: Child) {
        self.0.push(Some(child));
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for c in self.0.iter_mut().flatten() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = std::time::Instant::now() + LAST_WORDS;
            for c in self.0.iter_mut().flatten() {
                while std::time::Instant::now() < deadline
                    && c.try_wait().is_ok_and(|s| s.is_none())
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
        for c in self.0.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `cmd` with its stdout and stderr piped and returns its output; fails the test if it runs
/// past `within` (the commands tested bound each of their waits, so this only catches a hang).
/// Their output must fit the pipes (a line or a message), since nothing reads them until it ends.
pub fn output_within(cmd: &mut Command, within: std::time::Duration) -> std::process::Output {
    let mut children = Children::default();
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the command starts");
    children.push(child);
    let deadline = std::time::Instant::now() + within;
    loop {
        let slot = &mut children.0[0];
        let running = slot.as_mut().unwrap();
        if running.try_wait().unwrap().is_some() {
            return slot.take().unwrap().wait_with_output().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "{cmd:?} still runs after {within:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A scratch directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory named after this test process, `tag` and a count, so tests that run at
    /// the same time with the same tag (two clusters of one protocol and backend) never share one.
    pub fn new(tag: &str) -> TempDir {
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ringsmr-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A network namespace with loopback up and multicast on (what M-Ring Paxos needs on one host,
/// without touching the host's own loopback); deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `None` (after saying so) where this test may not create one.
    pub fn create(tag: &str) -> Option<Netns> {
        let name = format!("ringsmr-test-{}-{tag}", std::process::id());
        let ok =
            Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot create a network namespace (needs root and iproute2)");
            return None;
        }
        let ns = Netns { name };
        for args in [["link", "set", "lo", "up"], ["link", "set", "lo", "multicast"]] {
            let mut cmd = vec!["netns", "exec", &ns.name, "ip"];
            cmd.extend(args);
            if args[3] == "multicast" {
                cmd.push("on");
            }
            let st = Command::new("ip").args(&cmd).status().expect("ip runs");
            assert!(st.success(), "ip {cmd:?} failed");
        }
        Some(ns)
    }

    /// [`Netns::create`], then moves the calling thread into it: only that thread moves, and the
    /// threads it spawns from then on (a test's nodes and their sockets) start inside too.
    pub fn create_and_enter(tag: &str) -> Option<Netns> {
        let ns = Netns::create(tag)?;
        let file = std::fs::File::open(format!("/var/run/netns/{}", ns.name)).unwrap();
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        Some(ns)
    }

    /// `program`, run inside `netns` when there is one. (`ip netns exec` execs the program, so the
    /// child's pid is the program's own.)
    pub fn command(netns: Option<&Netns>, program: &str) -> Command {
        match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name, program]);
                c
            }
            None => Command::new(program),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
