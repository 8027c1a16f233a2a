//! Letting go of the netfilter socket without anyone waiting for the kernel.
//!
//! Closing the last reference to a netfilter socket makes nf_tables finish the destruction
//! its recent batches left (rules, elements and chains removed or updated are freed after
//! an RCU grace period; at NETLINK_URELEASE the kernel waits for that work, 10-20 ms here)
//! while holding the commit mutex every batch needs. A command that closed its socket at
//! exit therefore waited out its own grace period, and the next command's first batch
//! waited for whichever socket was being closed: back-to-back `-D` or `set del` cost 15-20
//! ms where the same command alone costs 5-10.
//!
//! So no command closes its socket. At exit it hands it to a child that shares its memory
//! (`CLONE_VM`: no page table copied, and the teardown of the ~15 MiB of BPF array mappings
//! leaves the command's exit too). Once the command has exited, the child passes the socket
//! to the namespace's keeper (an abstract unix socket, so one per network namespace) or
//! becomes the keeper itself. The keeper holds every socket it is given and closes them
//! all after [`IDLE_MS`] without a new one: by then the grace periods are long over and
//! the closes wait for nothing.

use std::os::fd::AsRawFd;

use libc::{c_int, c_void};

/// The keeper's address: abstract (a leading NUL), so scoped to the network namespace and
/// gone with the keeper.
const KEEPER: &[u8] = b"\0fwctl-netfilter-sockets";
/// Quiet time after which the keeper closes what it holds and exits.
const IDLE_MS: c_int = 500;
/// Sockets the keeper holds at most; past it the oldest is closed (which may wait).
const HELD: usize = 4096;
/// The child's stack: it runs raw system calls and small arrays only.
const STACK: usize = 256 << 10;

/// Hands this process's kept netfilter socket over (see the module's comment). Call it
/// last: the socket is gone for this process. Without a kept socket, nothing happens.
pub fn after_exit() {
    let Some(sock) = super::netlink::take_kept() else {
        return;
    };
    let mut pipe = [0 as c_int; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let child = Box::leak(Box::new(Child {
        sock: sock.as_raw_fd(),
        eof: pipe[0],
    }));
    // SAFETY: an anonymous private mapping; checked below.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    let pid = if stack == libc::MAP_FAILED {
        -1
    } else {
        // SAFETY: the child runs `run` on its own stack (the top of the mapping above, never
        // unmapped) with a leaked `Child`. Until this process has exited it makes raw system
        // calls only, with every signal blocked, and touches no memory this process uses.
        unsafe {
            libc::clone(
                run,
                stack.cast::<u8>().add(STACK).cast(),
                libc::CLONE_VM | libc::SIGCHLD,
                (child as *mut Child).cast(),
            )
        }
    };
    // SAFETY: closing the read end, ours alone; the write end stays open until exit.
    unsafe { libc::close(pipe[0]) };
    if pid < 0 {
        // SAFETY: no child holds the write end either.
        unsafe { libc::close(pipe[1]) };
    }
    drop(sock);
}

/// What the child keeps: the socket and the pipe's read end.
struct Child {
    sock: c_int,
    eof: c_int,
}

/// The child: keeps its two descriptors, waits for the end of file the parent's exit makes,
/// then gives the socket to the keeper or keeps it as the keeper.
extern "C" fn run(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the leaked Child. Raw system calls on our own descriptors and local
    // buffers; no allocation (a thread of the parent may have died holding the allocator's
    // lock). Signals are blocked first so that no handler of the parent runs here.
    unsafe {
        let child = &*(arg as *const Child);
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const libc::sigset_t,
            std::ptr::null_mut::<libc::sigset_t>(),
            8usize,
        );
        close_all_but(child.sock, child.eof);
        let mut byte = 0u8;
        while libc::read(child.eof, (&mut byte as *mut u8).cast(), 1) < 0 {}
        libc::close(child.eof);
        if !hand_over(child.sock) {
            keep(child.sock);
        }
        libc::syscall(libc::SYS_exit_group, 0);
    }
    0
}

/// Closes every descriptor but `a` and `b`.
unsafe fn close_all_but(a: c_int, b: c_int) {
    let (lo, hi) = (a.min(b) as libc::c_uint, a.max(b) as libc::c_uint);
    let close_range = |first: libc::c_uint, last: libc::c_uint| {
        if first <= last {
            // SAFETY: closing our own descriptors.
            unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        }
    };
    if lo > 0 {
        close_range(0, lo - 1);
    }
    close_range(lo + 1, hi - 1);
    close_range(hi + 1, libc::c_uint::MAX);
}

/// The keeper's address and its length.
fn address() -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (to, from) in addr.sun_path.iter_mut().zip(KEEPER) {
        *to = *from as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + KEEPER.len();
    (addr, len as libc::socklen_t)
}

/// Gives `sock` to the namespace's keeper, if one listens; then closes ours (the keeper's
/// copy keeps the socket open). False when there is no keeper.
unsafe fn hand_over(sock: c_int) -> bool {
    // SAFETY (whole body): system calls on descriptors made here, with local buffers.
    unsafe {
        let conn = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        if conn < 0 {
            return false;
        }
        let (addr, len) = address();
        let sent = libc::connect(conn, (&addr as *const libc::sockaddr_un).cast(), len) == 0
            && send_fd(conn, sock);
        libc::close(conn);
        if sent {
            libc::close(sock);
        }
        sent
    }
}

/// Room for one descriptor in a control message, 8-aligned.
#[repr(C, align(8))]
struct Control([u8; 32]);

/// The one byte of data a descriptor travels with.
fn one_byte(byte: &mut u8) -> libc::iovec {
    libc::iovec {
        iov_base: (byte as *mut u8).cast(),
        iov_len: 1,
    }
}

/// A message of `iov` with all of `control` as its control space; the pointers it holds
/// are only good while both live.
fn message(iov: &mut libc::iovec, control: &mut Control) -> libc::msghdr {
    // SAFETY: msghdr is plain data; all zeroes is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    msg
}

unsafe fn send_fd(conn: c_int, fd: c_int) -> bool {
    // SAFETY (whole body): a message built in local buffers, control space sized for one
    // descriptor (CMSG_SPACE(4) = 24 <= 32).
    unsafe {
        let (mut byte, mut control) = (0u8, Control([0; 32]));
        let mut iov = one_byte(&mut byte);
        let mut msg = message(&mut iov, &mut control);
        msg.msg_controllen = libc::CMSG_SPACE(4) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(4) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), fd);
        libc::sendmsg(conn, &msg, libc::MSG_NOSIGNAL) == 1
    }
}

/// The descriptor a connection sent, or -1.
unsafe fn receive_fd(conn: c_int) -> c_int {
    // SAFETY (whole body): as in `send_fd`; the kernel fills the control space.
    unsafe {
        let (mut byte, mut control) = (0u8, Control([0; 32]));
        let mut iov = one_byte(&mut byte);
        let mut msg = message(&mut iov, &mut control);
        if libc::recvmsg(conn, &mut msg, libc::MSG_CMSG_CLOEXEC) < 0 {
            return -1;
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
            || ((*cmsg).cmsg_len as usize) < libc::CMSG_LEN(4) as usize
        {
            return -1;
        }
        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>())
    }
}

/// Becomes the namespace's keeper with `sock` as its first socket, and returns once
/// [`IDLE_MS`] passed without a new one (the caller's exit then closes them all). If
/// another keeper started meanwhile, hands `sock` to it instead.
unsafe fn keep(sock: c_int) {
    // SAFETY (whole body): system calls on descriptors made or received here; the held
    // descriptors live in a local array.
    unsafe {
        let listener = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        if listener < 0 {
            return;
        }
        let (addr, len) = address();
        if libc::bind(listener, (&addr as *const libc::sockaddr_un).cast(), len) != 0
            || libc::listen(listener, 128) != 0
        {
            libc::close(listener);
            hand_over(sock);
            return;
        }
        // Room for as many sockets as the array holds, if the hard limit allows.
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max.min(HELD as libc::rlim_t + 16);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        let mut held = [-1 as c_int; HELD];
        held[0] = sock;
        let mut count = 1usize;
        loop {
            let mut poll = libc::pollfd {
                fd: listener,
                events: libc::POLLIN,
                revents: 0,
            };
            match libc::poll(&mut poll, 1, IDLE_MS) {
                0 => return,
                n if n < 0 => continue,
                _ => {}
            }
            let conn = libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            );
            if conn < 0 {
                continue;
            }
            let fd = receive_fd(conn);
            libc::close(conn);
            if fd >= 0 {
                let slot = &mut held[count % HELD];
                if *slot >= 0 {
                    libc::close(*slot);
                }
                *slot = fd;
                count += 1;
            }
        }
    }
}
