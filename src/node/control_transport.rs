//! The transport of a control endpoint, both ends, whatever its commands: line-delimited JSON over
//! TCP, one reply line per command line.
//!
//! Two kinds of process speak it with different commands: a single-ring `ringsmr node`
//! ([`control`](super::control)) and a Multi-Ring process (`multiring::control`). What they share
//! lives here, so that `node` knows nothing of Multi-Ring Paxos (the layering keeps `multiring`
//! above `node`) and the bounds, the connection limit and the hand-off to the thread that owns the
//! process' nodes are written once:
//!
//! ```text
//!  bench: ControlLink ──one JSON line──> accept thread ─> connection thread: Session::answer
//!         (connect with retry,                             │ (one Session per connection;
//!          bounded reply lines)   <──one JSON line──────── │  dropped when it closes)
//!                                                          └─> Handoff::ask ──> owner thread:
//!                                                              Pending::serve_one, between its work
//! ```
//!
//! The owner thread of a process' nodes never blocks on the control plane: a connection thread
//! hands it a request and waits for the answer; the owner takes requests when it has time
//! ([`Pending::serve_one`]).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The longest command line a process reads (commands are a few hundred bytes).
pub const COMMAND_BYTES_MAX: usize = 64 * 1024;
/// The longest reply line the bench reads (a load report carries a histogram and up to a thousand
/// checkpoints: about 100 KB).
pub const REPLY_BYTES_MAX: usize = 16 << 20;
/// Control connections a process serves at once; more are refused with an error reply.
pub const CONNECTIONS_MAX: usize = 8;

/// One line read with a bound.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// The line (without its newline) is in the buffer.
    Text,
    /// The line was longer than the bound; it was skipped up to its newline.
    TooLong,
    Eof,
}

/// Reads one `\n`-terminated line into `buf` (cleared first), holding at most `max_bytes` of it: a
/// peer cannot make us buffer an endless line. A last line without a newline counts as a line.
pub(crate) fn read_line_bounded(
    r: &mut impl BufRead,
    max_bytes: usize,
    buf: &mut Vec<u8>,
) -> io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    let mut seen_any = false;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(match (seen_any, too_long) {
                (false, _) => Line::Eof,
                (true, true) => Line::TooLong,
                (true, false) => Line::Text,
            });
        }
        seen_any = true;
        let (chunk, used, ended) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if buf.len() + chunk.len() > max_bytes {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        r.consume(used);
        if ended {
            return Ok(if too_long { Line::TooLong } else { Line::Text });
        }
    }
}

/// Writes `value` as one JSON line.
pub(crate) fn write_line(w: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

/// What one control connection does with its lines. A session is made per connection and dropped
/// when the connection closes, so whatever it started for that peer (a baseline stage) ends with it.
pub(crate) trait Session: Send + 'static {
    type Reply: Serialize;

    /// The reply to one command line; `Err` when the line could not be read as one (too long).
    fn answer(&mut self, line: Result<&[u8], String>) -> Self::Reply;
}

/// The reply every command set shares for a refusal: `{"reply":"error","error":...}`.
#[derive(Serialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
enum Refusal {
    Error { error: String },
}

/// Serves `listener` on a thread named `name`: each connection (at most [`CONNECTIONS_MAX`] at
/// once; one more is told so and closed) on a thread of its own with a session from
/// `new_session`.
pub(crate) fn serve<S: Session>(
    listener: TcpListener,
    name: String,
    new_session: impl Fn() -> S + Send + 'static,
) -> io::Result<()> {
    let connections = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name(name.clone()).spawn(move || {
        for stream in listener.incoming() {
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors, or a connection reset before accept: back off, go on.
                    eprintln!("ringsmr: {name}: accept: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if connections.fetch_add(1, Ordering::AcqRel) >= CONNECTIONS_MAX {
                connections.fetch_sub(1, Ordering::AcqRel);
                let error =
                    format!("this process serves at most {CONNECTIONS_MAX} control connections");
                let _ = write_line(&mut stream, &Refusal::Error { error });
                continue;
            }
            let session = new_session();
            let counted = Arc::clone(&connections);
            let spawned =
                std::thread::Builder::new().name(format!("{name}-conn")).spawn(move || {
                    // An error here means the peer went away; dropping the session ends what it ran.
                    let _ = serve_connection(stream, session);
                    counted.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_err() {
                connections.fetch_sub(1, Ordering::AcqRel);
            }
        }
    })?;
    Ok(())
}

fn serve_connection<S: Session>(stream: TcpStream, mut session: S) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = Vec::new();
    loop {
        let reply = match read_line_bounded(&mut reader, COMMAND_BYTES_MAX, &mut line)? {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                session.answer(Err(format!("command longer than {COMMAND_BYTES_MAX} bytes")))
            }
            Line::Text => session.answer(Ok(&line)),
        };
        write_line(&mut writer, &reply)?;
    }
}

/// A request a connection thread hands to the thread that owns the process' nodes, with where
/// the answer goes.
type Request<Q, A> = (Q, SyncSender<A>);

/// The connection threads' end of a hand-off (see [`handoff`]).
pub(crate) struct Handoff<Q, A> {
    requests: SyncSender<Request<Q, A>>,
}

/// The owner thread's end of a hand-off.
pub(crate) struct Pending<Q, A> {
    requests: Receiver<Request<Q, A>>,
}

/// A hand-off of requests from connection threads to the owner thread: one may wait while another
/// runs; a third is refused as busy (a load takes the process' nodes for its whole run).
pub(crate) fn handoff<Q, A>() -> (Handoff<Q, A>, Pending<Q, A>) {
    let (tx, rx) = mpsc::sync_channel(1);
    (Handoff { requests: tx }, Pending { requests: rx })
}

impl<Q, A> Handoff<Q, A> {
    /// Hands `request` over and waits for its answer; `Err` says why there is none.
    pub(crate) fn ask(&self, request: Q) -> Result<A, String> {
        let (answer_tx, answer_rx) = mpsc::sync_channel(1);
        match self.requests.try_send((request, answer_tx)) {
            Err(TrySendError::Full(_)) => {
                Err("busy: another load runs on this process and one more waits".into())
            }
            Err(TrySendError::Disconnected(_)) => Err("the process is stopping".into()),
            Ok(()) => answer_rx.recv().map_err(|_| "the process stopped during the load".into()),
        }
    }
}

impl<Q, A> Pending<Q, A> {
    /// Answers one waiting request with `run`, if one waits; returns whether one did. The owner
    /// thread calls this between its own work.
    pub(crate) fn serve_one(&self, run: impl FnOnce(Q) -> A) -> bool {
        let Ok((request, answer)) = self.requests.try_recv() else { return false };
        // The asker may have gone away meanwhile: nobody to tell.
        let _ = answer.send(run(request));
        true
    }
}

/// Between two attempts to connect to a control endpoint.
const CONNECT_RETRY: Duration = Duration::from_millis(100);

/// Why a [`ControlLink`] call has no reply; the text says what happened, the caller says to whom.
#[derive(Debug)]
pub(crate) struct LinkError(pub String);

/// The bench's end of a connection to a control endpoint.
pub(crate) struct ControlLink {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    line: Vec<u8>,
}

impl ControlLink {
    /// Connects to `addr`, retrying until `deadline`: the processes may still be starting. The
    /// error is the last attempt's.
    pub(crate) fn connect(addr: SocketAddr, deadline: Instant) -> Result<ControlLink, io::Error> {
        let stream = loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(CONNECT_RETRY);
            match TcpStream::connect_timeout(&addr, left) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => return Err(e),
                // Refused: nothing listens yet. Try again shortly.
                Err(_) => std::thread::sleep(CONNECT_RETRY),
            }
        };
        let _ = stream.set_nodelay(true);
        let reader = stream.try_clone()?;
        Ok(ControlLink { reader: BufReader::new(reader), writer: stream, line: Vec::new() })
    }

    pub(crate) fn send(&mut self, cmd: &impl Serialize) -> Result<(), LinkError> {
        write_line(&mut self.writer, cmd).map_err(|e| LinkError(format!("sending: {e}")))
    }

    /// The next reply line within `timeout`, as `R`.
    pub(crate) fn receive<R: DeserializeOwned>(
        &mut self,
        timeout: Duration,
    ) -> Result<R, LinkError> {
        let _ = self.writer.set_read_timeout(Some(timeout.max(Duration::from_millis(1))));
        let fail = |what: String| Err(LinkError(what));
        match read_line_bounded(&mut self.reader, REPLY_BYTES_MAX, &mut self.line) {
            Ok(Line::Text) => serde_json::from_slice(&self.line)
                .map_err(|e| LinkError(format!("unreadable reply: {e}"))),
            Ok(Line::TooLong) => fail(format!("reply longer than {REPLY_BYTES_MAX} bytes")),
            Ok(Line::Eof) => fail("closed the connection (did it stop?)".into()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                fail(format!("no reply within {} s", timeout.as_secs_f64()))
            }
            Err(e) => fail(format!("reading the reply: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_and_an_overlong_one_is_skipped_whole() {
        let input = format!("short\n{}\nnext\nlast", "x".repeat(100));
        let mut r = BufReader::with_capacity(16, input.as_bytes());
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        loop {
            let l = read_line_bounded(&mut r, 50, &mut buf).unwrap();
            if l == Line::Eof {
                break;
            }
            lines.push((l, String::from_utf8(buf.clone()).unwrap()));
        }
        let want = [
            (Line::Text, "short"),
            (Line::TooLong, ""),
            (Line::Text, "next"),
            (Line::Text, "last"),
        ];
        assert_eq!(lines, want.map(|(l, s)| (l, s.to_string())));
    }

    #[test]
    fn a_handoff_takes_one_waiting_request_and_refuses_another_as_busy() {
        let (handoff, pending) = handoff::<u32, u32>();
        assert!(!pending.serve_one(|q| q), "nothing waits yet");
        let handoff = Arc::new(handoff);
        let ask = |q: u32| {
            let h = Arc::clone(&handoff);
            std::thread::spawn(move || h.ask(q))
        };
        // Nobody serves yet: whichever asks second finds the hand-off full and returns at once.
        let (a, b) = (ask(20), ask(30));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !a.is_finished() && !b.is_finished() {
            assert!(Instant::now() < deadline, "neither request was refused as busy");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(pending.serve_one(|q| q + 1));
        let mut answers = [a.join().unwrap(), b.join().unwrap()];
        answers.sort();
        let busy = "busy: another load runs on this process and one more waits".to_string();
        assert!(answers == [Ok(21), Err(busy.clone())] || answers == [Ok(31), Err(busy)]);
        drop(pending);
        assert_eq!(handoff.ask(1), Err("the process is stopping".to_string()));
    }
}
