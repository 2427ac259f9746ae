//! Socket operations that one deadline bounds as a whole (R36), where the standard
//! library's socket timeouts only bound each system call.
//!
//! - [`Timed`]: the TCP socket under a TLS stream. OpenSSL reads a whole record (and a
//!   whole handshake flight) with as many `recv` calls as it takes, inside one
//!   `SSL_read` or `SSL_connect`; a socket timeout set once before that call is given
//!   again, in full, to each of those `recv`s, so a peer dripping one byte just inside it
//!   would stretch a record of a few KiB to many minutes. The wrapper gives each call
//!   only the time left and fails once none is.
//! - [`unix_connect`]: `connect(2)` on a local stream socket waits without limit while
//!   the listener's accept queue is full (a stuck or overloaded server); the wait is
//!   bounded by a send timeout set before connecting, which Linux applies to that wait.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The time left before `deadline`, at least a millisecond (a zero socket timeout means
/// "none"); `TimedOut` once it has passed.
fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
    }
    Ok(left.max(Duration::from_millis(1)))
}

/// A TCP socket whose every read and write is given only what is left of the current
/// operation's deadline (set with [`Timed::set_deadline`] before each operation).
pub struct Timed {
    sock: TcpStream,
    deadline: Instant,
}

impl Timed {
    pub fn new(sock: TcpStream, deadline: Instant) -> Timed {
        Timed { sock, deadline }
    }

    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// A socket timeout that fired at the deadline is the deadline passing: reported as
    /// `TimedOut`, which OpenSSL does not retry. One that fired early (rounding) stays
    /// `WouldBlock`, which it retries when asked again.
    fn expired(&self, e: io::Error) -> io::Error {
        if e.kind() == io::ErrorKind::WouldBlock && Instant::now() >= self.deadline {
            io::Error::new(io::ErrorKind::TimedOut, "deadline passed")
        } else {
            e
        }
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.set_read_timeout(Some(left(self.deadline)?))?;
        self.sock.read(buf).map_err(|e| self.expired(e))
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.set_write_timeout(Some(left(self.deadline)?))?;
        self.sock.write(buf).map_err(|e| self.expired(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

/// Connects to the local stream socket at `path` before `deadline` (`TimedOut` after).
///
/// Linux applies a socket's send timeout to the wait of `connect(2)` for room in the
/// listener's queue, and fails with `EAGAIN` when it runs out (socket(7): the timeouts
/// apply to `connect`). A non-blocking connect would not help: on a local socket it
/// fails at once with `EAGAIN` when the queue is full, and `poll` reports such a socket
/// writable before it is connected, so only a retry loop with sleeps could wait for room.
pub fn unix_connect(path: &str, deadline: Instant) -> io::Result<UnixStream> {
    let bytes = path.as_bytes();
    let mut addr = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    // The path must fit with its terminating NUL, and hold none of its own (the kernel
    // would connect to a shorter path than the one checked).
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a usable socket path (empty, too long or with a NUL byte)",
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    let len = libc::socklen_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "socket path too long"))?;

    // SAFETY: socket(2) takes no pointers; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor socket(2) just returned; nothing else owns it, and
    // OwnedFd closes it on every path below.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Not connected yet: only its timeouts are set through it before connect(2).
    let sock = UnixStream::from(owned);
    loop {
        sock.set_write_timeout(Some(left(deadline)?))?;
        // SAFETY: `addr` is a valid sockaddr_un that outlives the call and `len` is no
        // larger than it; the descriptor is open (owned by `sock`).
        let rc = unsafe {
            libc::connect(
                sock.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                len,
            )
        };
        if rc == 0 {
            return Ok(sock);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // A local connect that was interrupted or ran out of its timeout left no
            // half-open state behind: asking again (with the time left, or failing
            // with TimedOut once none is) is what a fresh connect would do.
            Some(libc::EINTR | libc::EAGAIN) => {}
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A listener with a queue of one that never accepts: once its queue is full, a
    /// connect waits, and is cut off at the deadline.
    #[test]
    fn a_connect_to_a_full_queue_ends_at_the_deadline() {
        let dir = std::env::temp_dir().join(format!("pam_totp_redis-q-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("mkdir");
        let path = dir.join("full.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        // SAFETY: listen(2) on the listener's open descriptor, no pointers: a second
        // listen sets a smaller queue.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 1) }, 0);
        let p = path.to_str().expect("utf-8 path");
        let mut held = Vec::new();
        let mut waited = None;
        for _ in 0..8 {
            let started = Instant::now();
            match unix_connect(p, started + Duration::from_millis(200)) {
                Ok(s) => held.push(s),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
                    waited = Some(started.elapsed());
                    break;
                }
            }
        }
        let waited = waited.expect("the queue never filled");
        // A connect without the deadline would block on the full queue for good: the
        // timeout is the proof; the lower bound shows the deadline was waited out.
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_socket_paths_are_refused_before_connecting() {
        let soon = Instant::now() + Duration::from_millis(100);
        for p in ["", "/a\0b", &"x".repeat(200)] {
            let e = unix_connect(p, soon).expect_err(p);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{p:?}");
        }
    }
}
