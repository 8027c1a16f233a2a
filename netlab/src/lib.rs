//! Throwaway network namespaces for the lab (`cargo xtask run`) and the tests: create them
//! with unique names, wire them with veth pairs, run code inside them, and remove them on
//! drop, also when a test panics. No dependency on fwctl, so xtask can use it before the
//! eBPF toolchain exists.

use std::{
    fs::File,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::Duration,
};

use anyhow::{bail, Context, Result};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace that exists for as long as this value.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `PREFIX-PID-N`, unique on this machine while this process lives, with its
    /// loopback up.
    pub fn new(prefix: &str) -> Result<Netns> {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`
    /// A counter of the namespace's SNMP MIB (`/proc/net/snmp` as seen from inside it),
    /// e.g. `("Udp", "RcvbufErrors")`.
    pub fn snmp(&self, group: &str, name: &str) -> Result<u64> {
        let text = output(self.command("cat").arg("/proc/net/snmp"))?;
        let prefix = format!("{group}:");
        let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            bail!("no {group} lines in /proc/net/snmp:\n{text}");
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.parse().ok())
            .with_context(|| format!("no {group} {name} in /proc/net/snmp"))
    }

    pub fn ip(&self, args: &[&str]) -> Result<String> {
        output(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// A command to run inside the namespace (`ip netns exec NAME PROGRAM`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// A command run in the namespace as a host runs it: the child enters the network
    /// namespace itself before exec, without `ip netns exec` (its own start-up and its
    /// private remount of /sys cost ~1.5 ms per command here, which timings would carry).
    /// A program that reads /sys/class/net then sees the mount namespace's view.
    pub fn direct(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(program);
        // Opened here: between fork and exec only system calls are safe, not allocation.
        let ns = match File::open(format!("/run/netns/{}", self.name)) {
            Ok(ns) => ns,
            // The spawn fails as the path does.
            Err(_) => return self.command(program),
        };
        // SAFETY: the closure only calls setns, an async-signal-safe system call, on a
        // descriptor it owns, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs `f` on a thread that has entered the namespace: sockets it creates belong to
    /// the namespace and stay there when handed back to other threads.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        thread::spawn(move || -> Result<T> {
            enter(&path)?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread in netns {} panicked", self.name))?
    }

    /// Moves the calling thread into the namespace for good (other threads stay put).
    pub fn enter_on_this_thread(&self) -> Result<()> {
        enter(&format!("/run/netns/{}", self.name))
    }

    /// A TCP listener inside the namespace that accepts connections and echoes one line.
    pub fn tcp_echo(&self, addr: SocketAddr) -> Result<()> {
        let listener = self.run(move || TcpListener::bind(addr))??;
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || echo(stream));
            }
        });
        Ok(())
    }

    /// Accepts one TCP connection inside the namespace within `timeout` and returns the
    /// peer's address as the server sees it (None if nothing arrived): what NAT did shows.
    pub fn tcp_accept_peer(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<thread::JoinHandle<Option<SocketAddr>>> {
        let listener = self.run(move || TcpListener::bind(addr))??;
        listener.set_nonblocking(true)?;
        Ok(thread::spawn(move || {
            let deadline = std::time::Instant::now() + timeout;
            while std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nonblocking(false);
                        echo(stream);
                        return Some(peer);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
            None
        }))
    }

    /// A UDP socket bound inside the namespace.
    pub fn udp_socket(&self, addr: SocketAddr) -> Result<UdpSocket> {
        let sock = self.run(move || UdpSocket::bind(addr))??;
        Ok(sock)
    }

    /// Connects from inside the namespace.
    pub fn tcp_connect(&self, addr: SocketAddr, timeout: Duration) -> Result<Probe> {
        self.run(move || tcp_probe(addr, timeout))
    }
}

/// setns(CLONE_NEWNET) for the calling thread.
fn enter(path: &str) -> Result<()> {
    let ns = File::open(path).with_context(|| format!("opening {path}"))?;
    // SAFETY: setns on an fd we own; affects only this thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setns(CLONE_NEWNET)");
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn echo(mut stream: TcpStream) {
    let mut buf = [0u8; 512];
    if let Ok(n) = stream.read(&mut buf) {
        let _ = stream.write_all(&buf[..n]);
    }
}

/// What a TCP connection attempt ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Connected and got the line back.
    Echoed,
    /// A RST came back: the SYN reached the host, nothing listened.
    Refused,
    /// No answer: the SYN was dropped.
    TimedOut,
}

fn tcp_probe(addr: SocketAddr, timeout: Duration) -> Probe {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(mut s) => {
            let _ = s.set_read_timeout(Some(timeout));
            let ok = s.write_all(b"ping\n").is_ok() && {
                let mut buf = [0u8; 5];
                s.read_exact(&mut buf).is_ok() && &buf == b"ping\n"
            };
            if ok {
                Probe::Echoed
            } else {
                Probe::TimedOut
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
        Err(_) => Probe::TimedOut,
    }
}

/// A veth pair between two namespaces, addressed and up. IPv6 addresses skip duplicate
/// address detection so they work at once.
pub struct Link<'a> {
    pub ns: &'a Netns,
    pub ifname: &'a str,
    pub addrs: &'a [&'a str],
}

pub fn veth(a: Link<'_>, b: Link<'_>) -> Result<()> {
    run(Command::new("ip").args([
        "link",
        "add",
        a.ifname,
        "netns",
        a.ns.name(),
        "type",
        "veth",
        "peer",
        "name",
        b.ifname,
        "netns",
        b.ns.name(),
    ]))?;
    for end in [&a, &b] {
        for addr in end.addrs {
            let mut args = vec!["addr", "add", addr, "dev", end.ifname];
            if addr.contains(':') {
                args.push("nodad");
            }
            end.ns.ip(&args)?;
        }
        end.ns.ip(&["link", "set", end.ifname, "up"])?;
    }
    Ok(())
}

pub fn run(cmd: &mut Command) -> Result<()> {
    output(cmd).map(|_| ())
}

/// Runs `cmd`, returning stdout; fails with stderr when it exits non-zero.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out: Output = cmd
        .output()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
