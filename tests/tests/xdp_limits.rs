//! Rate limits at XDP (BPF_PROG_TEST_RUN): `-m limit` and `-m hashlimit` pass a bucket's
//! burst and then stop matching; hashlimit keeps one bucket per key; a table that cannot
//! take new keys turns them away as iptables does (`hotdrop`), which is what bounds a flood
//! from random sources; limits that XDP cannot check once per packet are left to netfilter.
//! The rates are per hour, so no token comes back while a test runs.

use fwctl::rules::Family;
use tests::{
    packets::Packet,
    program::{Harness, DEFER, LO_IFINDEX, XDP_DROP, XDP_PASS},
};

fn udp_from(src: &str) -> Vec<u8> {
    Packet::udp(src, "10.0.0.2", 4000, 53).bytes()
}

/// The program's verdicts for `frames`, in order.
fn verdicts(h: &Harness, frames: &[Vec<u8>]) -> Vec<u32> {
    frames
        .iter()
        .map(|f| h.judge(f, LO_IFINDEX).expect("test run").verdict())
        .collect()
}

fn packets(h: &Harness, rule: usize) -> u64 {
    h.counter(Family::V4, rule).expect("counter").packets
}

#[test]
fn limit_passes_its_burst_then_stops_matching() {
    let mut h = Harness::load().expect("loading the XDP program (run as root)");
    h.apply(&[
        "-P INPUT DROP",
        "-A INPUT -p udp --dport 53 -m limit --limit 2/hour --limit-burst 3 -j ACCEPT",
    ])
    .unwrap();
    let frames = vec![udp_from("10.0.0.1"); 5];
    assert_eq!(
        verdicts(&h, &frames),
        [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP]
    );
    assert_eq!(packets(&h, 1), 3);
    assert_eq!(packets(&h, 0), 2);
    // An update of another rule keeps the bucket as it is: still empty.
    h.apply(&[
        "-P INPUT DROP",
        "-A INPUT -p udp --dport 53 -m limit --limit 2/hour --limit-burst 3 -j ACCEPT",
        "-A INPUT -p tcp --dport 22 -j ACCEPT",
    ])
    .unwrap();
    assert_eq!(verdicts(&h, &frames[..1]), [XDP_DROP]);
}

#[test]
fn hashlimit_keeps_a_bucket_per_source() {
    let mut h = Harness::load().expect("loading the XDP program (run as root)");
    h.apply(&[
        "-P INPUT DROP",
        "-A INPUT -p udp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name dns -j ACCEPT",
    ])
    .unwrap();
    let a = udp_from("10.0.0.1");
    let b = udp_from("10.0.0.7");
    assert_eq!(
        verdicts(
            &h,
            &[a.clone(), a.clone(), a.clone(), b.clone(), b.clone(), b]
        ),
        [XDP_PASS, XDP_PASS, XDP_DROP, XDP_PASS, XDP_PASS, XDP_DROP]
    );
    assert_eq!(packets(&h, 1), 4);
    // --hashlimit-srcmask 24: both sources share one bucket.
    h.apply(&[
        "-P INPUT DROP",
        "-A INPUT -p udp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-srcmask 24 --hashlimit-name dns2 -j ACCEPT",
    ])
    .unwrap();
    assert_eq!(
        verdicts(
            &h,
            &[
                udp_from("10.0.0.1"),
                udp_from("10.0.0.7"),
                udp_from("10.0.0.9")
            ]
        ),
        [XDP_PASS, XDP_PASS, XDP_DROP]
    );
}

#[test]
fn hashlimit_above_matches_once_over_the_rate() {
    let mut h = Harness::load().expect("loading the XDP program (run as root)");
    h.apply(&[
        "-P INPUT DROP",
        "-A INPUT -p udp -m hashlimit --hashlimit-above 1/hour --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name flood -j DROP",
        "-A INPUT -p udp -j ACCEPT",
    ])
    .unwrap();
    let a = udp_from("10.0.0.1");
    assert_eq!(
        verdicts(&h, &[a.clone(), a.clone(), a.clone(), a]),
        [XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP]
    );
    assert_eq!(packets(&h, 1), 2);
    assert_eq!(packets(&h, 2), 2);
}

/// Random sources are all newcomers: past `--hashlimit-htable-max` new keys per
/// `--hashlimit-htable-expire`, they are dropped on the spot and counted by no rule, and the
/// keys already known keep their buckets.
#[test]
fn a_flood_of_new_sources_cannot_refill_buckets() {
    let mut h = Harness::load().expect("loading the XDP program (run as root)");
    h.apply(&[
        "-P INPUT ACCEPT",
        "-A INPUT -p udp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name spoof --hashlimit-htable-max 4 -j ACCEPT",
        "-A INPUT -p udp -j DROP",
    ])
    .unwrap();
    let known = udp_from("10.1.0.1");
    assert_eq!(verdicts(&h, std::slice::from_ref(&known)), [XDP_PASS]);
    let spoofed: Vec<Vec<u8>> = (0..200)
        .map(|i| udp_from(&format!("10.2.{}.{}", i / 250, 1 + i % 250)))
        .collect();
    let v = verdicts(&h, &spoofed);
    let passed = v.iter().filter(|&&x| x == XDP_PASS).count();
    // The meter held 4 newcomers and the known source took one: 3 more get buckets.
    assert_eq!(passed, 3, "{v:?}");
    assert!(v[3..].iter().all(|&x| x == XDP_DROP));
    let reasons = h.maps.reasons().unwrap();
    let full = reasons
        .iter()
        .find(|(n, _)| *n == "hashlimit_full")
        .unwrap()
        .1;
    assert_eq!(full, 197);
    // Neither the rule's DROP nor the policy counted them.
    assert_eq!(packets(&h, 2), 0);
    // The known source still has its bucket: two tokens left of three.
    assert_eq!(
        verdicts(&h, &[known.clone(), known.clone(), known]),
        [XDP_PASS, XDP_PASS, XDP_DROP]
    );
}

#[test]
fn limits_xdp_cannot_check_once_are_left_to_netfilter() {
    let mut h = Harness::load().expect("loading the XDP program (run as root)");
    // A limit on a jump would be checked for every entry of the chain it leads to.
    h.apply(&[
        "-P INPUT DROP",
        "-N RATED",
        "-A RATED -j ACCEPT",
        "-A INPUT -p udp -m limit --limit 1/hour -j RATED",
    ])
    .unwrap();
    assert_eq!(verdicts(&h, &[udp_from("10.0.0.1")]), [DEFER]);
    // connlimit counts conntrack entries, which XDP does not see.
    h.apply(&[
        "-P INPUT DROP",
        "-A INPUT -p udp -m connlimit --connlimit-above 2 -j DROP",
        "-A INPUT -p tcp -j ACCEPT",
    ])
    .unwrap();
    assert_eq!(verdicts(&h, &[udp_from("10.0.0.1")]), [DEFER]);
    assert_eq!(
        verdicts(&h, &[Packet::tcp("10.0.0.1", "10.0.0.2", 1, 22).bytes()]),
        [XDP_PASS]
    );
}
