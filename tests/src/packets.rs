//! Frames for BPF_PROG_TEST_RUN: Ethernet (optionally VLAN-tagged), IPv4 or IPv6 (optionally
//! with a hop-by-hop header or as a fragment), and TCP/UDP/ICMP. IPv4 header checksums are
//! right, so the same frames could go on a wire.

use std::net::IpAddr;

#[derive(Clone, Copy, Debug)]
pub enum L4 {
    Tcp { sport: u16, dport: u16 },
    Udp { sport: u16, dport: u16 },
    Icmp,
    Icmpv6,
    Other(u8),
}

/// The destination MAC of every frame built here: the receiving interface's, as the
/// harness tells the program (`FW_IFMAC`).
pub const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

#[derive(Clone, Debug)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: L4,
    pub vlan: Option<u16>,
    /// IPv6 only: put a hop-by-hop options header before the transport header.
    pub hop_by_hop: bool,
    /// Fragment offset in 8-byte units; non-zero makes a non-first fragment.
    pub frag_offset: u16,
    pub payload: usize,
    pub tcp_flags: u8,
    /// ICMP or ICMPv6 type and code.
    pub icmp: (u8, u8),
}

impl Packet {
    pub fn new(src: &str, dst: &str, l4: L4) -> Packet {
        Packet {
            src: src.parse().expect("source address"),
            dst: dst.parse().expect("destination address"),
            l4,
            vlan: None,
            hop_by_hop: false,
            frag_offset: 0,
            payload: 10,
            tcp_flags: 0x02,
            icmp: if matches!(l4, L4::Icmpv6) {
                (128, 0)
            } else {
                (8, 0)
            },
        }
    }

    /// The fields of this frame that rules match, as fwctl's reference evaluator reads them
    /// (received on `iface`, for this host, conntrack state unknown).
    pub fn view(&self, iface: &str) -> fwctl::rules::eval::PacketView {
        let ports = match self.l4 {
            L4::Tcp { sport, dport } | L4::Udp { sport, dport } if self.frag_offset == 0 => {
                Some((sport, dport))
            }
            _ => None,
        };
        let first = self.frag_offset == 0;
        fwctl::rules::eval::PacketView {
            family: match self.src {
                IpAddr::V4(_) => fwctl::rules::Family::V4,
                IpAddr::V6(_) => fwctl::rules::Family::V6,
            },
            iface: iface.to_string(),
            out_iface: None,
            src: self.src,
            dst: self.dst,
            proto: self.proto(),
            ports,
            tcp_flags: matches!(self.l4, L4::Tcp { .. })
                .then_some(self.tcp_flags)
                .filter(|_| first),
            icmp: matches!(self.l4, L4::Icmp | L4::Icmpv6)
                .then_some(self.icmp)
                .filter(|_| first),
            ct_state: None,
            fragment: self.frag_offset != 0,
        }
    }

    pub fn tcp(src: &str, dst: &str, sport: u16, dport: u16) -> Packet {
        Packet::new(src, dst, L4::Tcp { sport, dport })
    }

    pub fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Packet {
        Packet::new(src, dst, L4::Udp { sport, dport })
    }

    fn proto(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp => 1,
            L4::Icmpv6 => 58,
            L4::Other(p) => p,
        }
    }

    fn transport(&self) -> Vec<u8> {
        let mut t = match self.l4 {
            L4::Tcp { sport, dport } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[12] = 5 << 4;
                h[13] = self.tcp_flags;
                h
            }
            L4::Udp { sport, dport } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..6].copy_from_slice(&((8 + self.payload) as u16).to_be_bytes());
                h
            }
            L4::Icmp | L4::Icmpv6 => vec![self.icmp.0, self.icmp.1, 0, 0, 0, 1, 0, 1],
            L4::Other(_) => Vec::new(),
        };
        t.extend(std::iter::repeat_n(0xab, self.payload));
        t
    }

    /// Length of the IP packet: what iptables' byte counters add up.
    pub fn ip_len(&self) -> u64 {
        self.bytes().len() as u64 - self.l2_len() as u64
    }

    fn l2_len(&self) -> usize {
        14 + if self.vlan.is_some() { 4 } else { 0 }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut frame = HOST_MAC.to_vec();
        frame.extend([0x02, 0, 0, 0, 0, 1]);
        let ethertype: u16 = match self.src {
            IpAddr::V4(_) => 0x0800,
            IpAddr::V6(_) => 0x86dd,
        };
        if let Some(vid) = self.vlan {
            frame.extend(0x8100u16.to_be_bytes());
            frame.extend(vid.to_be_bytes());
        }
        frame.extend(ethertype.to_be_bytes());
        let transport = self.transport();
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut ip = vec![0u8; 20];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&((20 + transport.len()) as u16).to_be_bytes());
                ip[6..8].copy_from_slice(&(self.frag_offset & 0x1fff).to_be_bytes());
                ip[8] = 64;
                ip[9] = self.proto();
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                let sum = checksum(&ip);
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                frame.extend(ip);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut ext = Vec::new();
                let mut next = self.proto();
                if self.frag_offset != 0 {
                    let mut frag = vec![next, 0, 0, 0, 0, 0, 0, 1];
                    frag[2..4].copy_from_slice(&(self.frag_offset << 3).to_be_bytes());
                    ext.splice(0..0, frag);
                    next = 44;
                }
                if self.hop_by_hop {
                    // Next header, length 0 (8 bytes), PadN filling the rest.
                    ext.splice(0..0, [next, 0, 1, 4, 0, 0, 0, 0]);
                    next = 0;
                }
                let mut ip = vec![0u8; 40];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&((ext.len() + transport.len()) as u16).to_be_bytes());
                ip[6] = next;
                ip[7] = 64;
                ip[8..24].copy_from_slice(&s.octets());
                ip[24..40].copy_from_slice(&d.octets());
                frame.extend(ip);
                frame.extend(ext);
            }
            _ => panic!("mixed address families"),
        }
        frame.extend(transport);
        frame
    }
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ARP request: not IP, so neither iptables nor fwctl judges it.
pub fn arp() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend([0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
    f.extend([0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend([
        0x02, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ]);
    f
}
