//! The benchmarks' packet generator: BPF_PROG_TEST_RUN in live-frames mode runs an XDP_TX
//! program (from fwctl's BENCH_PROGRAMS) on a veth, so every run sends the frame to the
//! peer namespace at the rate the kernel can push it. `bench_tx` sends the frame as given,
//! `bench_tx_spoof` with a random source address in each frame.

use std::time::Instant;

use anyhow::{Context, Result};
use aya::{
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp},
    Ebpf, EbpfLoader,
};
use netlab::Netns;

/// The interface index of `name` in `ns`.
pub fn ifindex(ns: &Netns, name: &str) -> Result<u32> {
    let out = ns.ip(&["-o", "link", "show", name])?;
    out.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("no ifindex for {name} in {out:?}"))
}

/// The MAC address of `name` in `ns` as bytes, for a frame's Ethernet header.
pub fn mac_bytes(ns: &Netns, name: &str) -> Result<Vec<u8>> {
    crate::mac(ns, name)?
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).map_err(anyhow::Error::from))
        .collect()
}

/// The counters `ethtool -S` shows for a veth (per-queue XDP and drop counters).
pub fn nic_stats(ns: &Netns, name: &str) -> Result<Vec<(String, u64)>> {
    let out = netlab::output(ns.command("ethtool").args(["-S", name]))?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.trim().to_string(), value.trim().parse().ok()?))
        })
        .collect())
}

/// A loaded generator program for one frame out of one interface. Create and use it on a
/// thread that is in the interface's namespace: the ifindex is resolved there.
pub struct Generator {
    // Keeps the program loaded.
    ebpf: Ebpf,
    program: &'static str,
    frame: Vec<u8>,
    ctx: Vec<u8>,
}

impl Generator {
    /// `program` is "bench_tx" or "bench_tx_spoof".
    pub fn new(program: &'static str, ifindex: u32, frame: Vec<u8>) -> Result<Generator> {
        let mut ebpf = EbpfLoader::new().load(fwctl::BENCH_PROGRAMS)?;
        let prog: &mut Xdp = ebpf
            .program_mut(program)
            .with_context(|| format!("no {program} in the bench programs"))?
            .try_into()?;
        prog.load()?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex. XDP_TX leaves through the ingress interface.
        let md: [u32; 6] = [0, frame.len() as u32, 0, ifindex, 0, 0];
        let ctx = md.iter().flat_map(|w| w.to_ne_bytes()).collect();
        Ok(Generator {
            ebpf,
            program,
            frame,
            ctx,
        })
    }

    /// Runs the program on `frames` frames; returns the seconds it took.
    pub fn send(&mut self, frames: u32) -> Result<f64> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(self.program)
            .context("generator program")?
            .try_into()?;
        let start = Instant::now();
        prog.test_run(TestRunOptions {
            data_in: Some(&self.frame),
            ctx_in: Some(&self.ctx),
            repeat: frames,
            attrs: TestRunAttrs::new().xdp_live_frames(64),
            ..Default::default()
        })?;
        Ok(start.elapsed().as_secs_f64())
    }
}

/// Sends `frames` copies of `frame` out of `ifname` in `ns` with `program`; returns the
/// seconds taken.
pub fn flood(
    ns: &Netns,
    ifname: &str,
    program: &'static str,
    frame: Vec<u8>,
    frames: u32,
) -> Result<f64> {
    let ifindex = ifindex(ns, ifname)?;
    ns.run(move || Generator::new(program, ifindex, frame)?.send(frames))?
}
