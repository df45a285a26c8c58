//! Waking a reactor from another thread: an eventfd the reactor always has a read armed on (io_uring)
//! or registered for readability (epoll). Writing to it is one syscall and takes no lock.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use nix::sys::eventfd::{EfdFlags, EventFd};

/// A handle that wakes one reactor; cheap to clone and `Send`.
#[derive(Clone, Debug)]
pub struct Waker {
    fd: Arc<EventFd>,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(Waker { fd: Arc::new(fd) })
    }

    /// Makes the reactor's current or next `poll` return and call `Handler::woken`.
    pub fn wake(&self) {
        // EAGAIN means the counter is at its maximum: the reactor is already due to wake.
        let _ = self.fd.write(1);
    }

    /// Resets the counter (epoll backend; the io_uring backend reads it with its own operation).
    pub(crate) fn drain(&self) {
        let _ = self.fd.read();
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_fd().as_raw_fd()
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
