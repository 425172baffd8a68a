//! A `NETLINK_NETFILTER` socket, opened in a named network namespace when asked: the only
//! system calls the netlink path needs beyond read(2)/write(2) (socket(2), setsockopt(2)),
//! which the standard library does not wrap for netlink.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// An open netfilter netlink socket.
pub(crate) struct Socket {
    file: File,
}

#[allow(unsafe_code)]
fn set_option(fd: &impl AsRawFd, level: i32, name: i32, value: &[u8]) -> io::Result<()> {
    // SAFETY: setsockopt on a socket this function's caller owns, with a pointer and length
    // describing a live byte slice.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[allow(unsafe_code)]
fn open_here() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; a non-negative result is a new descriptor
    // that nothing else owns, so OwnedFd may take it.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one = 1i32.to_ne_bytes();
    // Errors come back as the failing message's header and the kernel's explanation
    // (extended ack), not as an echo of the whole message.
    set_option(&fd, libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, &one)?;
    set_option(&fd, libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, &one)?;
    let timeout = libc::timeval {
        tv_sec: 60,
        tv_usec: 0,
    };
    // SAFETY: viewing a plain C struct as its bytes for setsockopt.
    let timeout = unsafe {
        std::slice::from_raw_parts(
            (&timeout as *const libc::timeval).cast::<u8>(),
            std::mem::size_of::<libc::timeval>(),
        )
    };
    set_option(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, timeout)?;
    Ok(fd)
}

impl Socket {
    /// Open a socket in the current network namespace, or in the named one (`ip netns`): a
    /// socket stays in the namespace it was created in, so a short-lived thread enters the
    /// namespace, opens it and ends.
    pub(crate) fn open(netns: Option<&str>) -> io::Result<Socket> {
        let fd = match netns {
            None => open_here()?,
            Some(name) => std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        crate::lab::enter_namespace(name).map_err(|e| {
                            io::Error::new(e.kind(), format!("network namespace {name}: {e}"))
                        })?;
                        open_here()
                    })
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("netlink socket thread panicked")))
            })?,
        };
        Ok(Socket {
            file: File::from(fd),
        })
    }

    /// How long a receive waits before it fails with `WouldBlock`.
    pub(crate) fn set_receive_timeout(&mut self, timeout: std::time::Duration) -> io::Result<()> {
        let timeout = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        #[allow(unsafe_code)]
        // SAFETY: viewing a plain C struct as its bytes for setsockopt.
        let timeout = unsafe {
            std::slice::from_raw_parts(
                (&timeout as *const libc::timeval).cast::<u8>(),
                std::mem::size_of::<libc::timeval>(),
            )
        };
        set_option(&self.file, libc::SOL_SOCKET, libc::SO_RCVTIMEO, timeout)
    }

    /// Grow the receive buffer to `bytes` (as root, past `net.core.rmem_max`).
    pub(crate) fn set_receive_buffer(&mut self, bytes: usize) -> io::Result<()> {
        let size = i32::try_from(bytes).unwrap_or(i32::MAX);
        set_option(
            &self.file,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size.to_ne_bytes(),
        )
    }

    /// Send one datagram (a whole batch), growing the send buffer to hold it.
    pub(crate) fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        let size = i32::try_from(datagram.len() + 4096).unwrap_or(i32::MAX);
        set_option(
            &self.file,
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            &size.to_ne_bytes(),
        )?;
        let written = self.file.write(datagram)?;
        if written != datagram.len() {
            return Err(io::Error::other(format!(
                "netlink: sent {written} of {} bytes",
                datagram.len()
            )));
        }
        Ok(())
    }

    /// Receive one datagram (one or more netlink messages) into `buffer`.
    pub(crate) fn receive<'a>(&mut self, buffer: &'a mut [u8]) -> io::Result<&'a [u8]> {
        let n = self.file.read(buffer)?;
        Ok(&buffer[..n])
    }
}
