//! A network namespace's cookie (SO_NETNS_COOKIE, Linux 5.14): a 64-bit number the kernel
//! never gives two namespaces during one boot, unlike the namespace's inode number, which is
//! reused as soon as a namespace is gone.

use std::os::fd::OwnedFd;

use nix::libc;
use nix::sys::socket::{getsockopt, socket, AddressFamily, SockFlag, SockType};

/// `SO_NETNS_COOKIE` from `<asm-generic/socket.h>` (the libc crate has no constant for it).
const SO_NETNS_COOKIE: i32 = 71;

#[derive(Debug, Clone, Copy)]
struct NetnsCookie;

nix::getsockopt_impl!(
    NetnsCookie,
    libc::SOL_SOCKET,
    SO_NETNS_COOKIE,
    u64,
    nix::sys::socket::sockopt::GetStruct<u64>
);

/// The cookie of the network namespace the calling thread is in; `None` on kernels
/// without it.
pub fn current() -> Option<u64> {
    let sock: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    getsockopt(&sock, NetnsCookie).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_namespace_has_a_cookie_and_keeps_it() {
        let first = current().expect("SO_NETNS_COOKIE (Linux 5.14 or later)");
        assert_ne!(first, 0);
        assert_eq!(current(), Some(first));
    }
}
