//! Watching the firewall: `fwctl exporter` serves the numbers `fwctl -L -v -x` shows, on a
//! page an independent Prometheus text-format parser accepts; `fwctl top` shows live rates
//! in a real terminal (tmux) and quits on `q`. Namespaces are `fwo-*`, removed on drop.

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use openmetrics_parser::{
    prometheus::parse_prometheus, MetricFamily, PrometheusType, PrometheusValue,
};
use tests::{
    fwctl_bin, listed_counters, udp_exchange, FwNs, Lab, CLIENT_V4, CLIENT_V6, HOST_IF, HOST_V4,
    HOST_V6,
};

const EXPORTER: &str = "127.0.0.1:9469";

/// The exporter running in a namespace, killed on drop (before the lab goes down).
struct Exporter(Child);

impl Exporter {
    fn start(ns: &FwNs) -> Exporter {
        let child = ns
            .fwctl_command()
            .args(["exporter", "--listen", EXPORTER])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting fwctl exporter");
        Exporter(child)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP GET from inside the namespace: (status line, headers, body).
fn http_get(ns: &FwNs, path: &str) -> Option<(String, String, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {EXPORTER}\r\n\r\n");
    ns.run(move || -> Option<(String, String, String)> {
        let addr: SocketAddr = EXPORTER.parse().ok()?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(request.as_bytes()).ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).ok()?;
        let (head, body) = reply.split_once("\r\n\r\n")?;
        let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        Some((status.to_string(), headers.to_string(), body.to_string()))
    })
    .ok()
    .flatten()
}

/// The page at /metrics, waiting for the exporter to listen.
fn scrape(ns: &FwNs) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((status, headers, body)) = http_get(ns, "/metrics") {
            assert_eq!(status, "HTTP/1.1 200 OK", "{headers}\n{body}");
            assert!(
                headers.contains("Content-Type: text/plain; version=0.0.4"),
                "{headers}"
            );
            return body;
        }
        assert!(Instant::now() < deadline, "the exporter never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `-L -n -v -x --line-numbers` of each (family, table), keyed as the metrics label them.
fn listings(ns: &FwNs) -> HashMap<(String, String), String> {
    let mut out = HashMap::new();
    for (family, fam_args) in [("ipv4", &[][..]), ("ipv6", &["-6"][..])] {
        for (table, table_args) in [("filter", &[][..]), ("nat", &["-t", "nat"][..])] {
            let mut args: Vec<&str> = fam_args.to_vec();
            args.extend(table_args);
            args.extend(["-L", "-n", "-v", "-x", "--line-numbers"]);
            out.insert((family.to_string(), table.to_string()), ns.fwctl_ok(&args));
        }
    }
    out
}

type Family = MetricFamily<PrometheusType, PrometheusValue>;

fn value(v: &PrometheusValue) -> u64 {
    match v {
        PrometheusValue::Counter(c) => c.value.as_f64() as u64,
        PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64() as u64,
        other => panic!("unexpected sample {other:?}"),
    }
}

/// (family, table, chain, rule number or 0 for the policy) -> value, for one metric.
fn by_rule(f: &Family) -> HashMap<(String, String, String, usize), u64> {
    f.iter_samples()
        .map(|s| {
            let labels = s.get_labelset().expect("labels");
            let get = |k: &str| labels.get_label_value(k).unwrap_or_default().to_string();
            let number = get("rule").parse().unwrap_or(0);
            (
                (get("family"), get("table"), get("chain"), number),
                value(&s.value),
            )
        })
        .collect()
}

#[test]
fn exporter_serves_the_listing_numbers_as_prometheus_text() {
    let lab = Lab::named("fwo-exp").unwrap();
    lab.host.apply(&[
        // The scrapes arrive on lo, judged by netfilter: this rule counts them.
        "-A INPUT -i lo -j ACCEPT",
        "-N SVC",
        "-A INPUT -j SVC",
        "-A INPUT -p udp --dport 5000 -j ACCEPT",
        "-P INPUT DROP",
        "-6 -A INPUT -p udp --dport 5353 -j ACCEPT",
        "-6 -P INPUT DROP",
        "-t nat -A POSTROUTING -o nothere0 -j MASQUERADE",
    ]);
    // A comment with the characters the format must escape.
    lab.host.fwctl_ok(&[
        "-A",
        "SVC",
        "-p",
        "udp",
        "--dport",
        "5353",
        "-m",
        "comment",
        "--comment",
        "mDNS \"local\" \\o/",
        "-j",
        "ACCEPT",
    ]);
    lab.host.apply(&["-A SVC -p udp --dport 5354 -j RETURN"]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    let _exporter = Exporter::start(&lab.host);

    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 5353, 4, 100), 4);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 5354, 3, 100), 0);
    assert_eq!(udp_exchange(&lab, CLIENT_V4, HOST_V4, 5000, 2, 100), 2);
    assert_eq!(udp_exchange(&lab, CLIENT_V6, HOST_V6, 5353, 2, 50), 2);
    scrape(&lab.host);

    // Every number of the page lies between a listing just before it and one just after:
    // where those two agree (every rule but the one that counts the scrapes themselves),
    // the page equals the listing. A stray packet (IPv6 housekeeping) can land between
    // them; then read again.
    for attempt in 1.. {
        let before = listings(&lab.host);
        let page = scrape(&lab.host);
        let after = listings(&lab.host);
        let exposition = parse_prometheus(&page)
            .unwrap_or_else(|e| panic!("the page does not parse: {e:?}\n{page}"));
        let family = |name: &str| -> &Family {
            exposition.families.get(name).unwrap_or_else(|| {
                panic!(
                    "no {name} in {:?}",
                    exposition.families.keys().collect::<Vec<_>>()
                )
            })
        };
        for (name, kind) in [
            ("fwctl_rule_packets_total", PrometheusType::Counter),
            ("fwctl_rule_bytes_total", PrometheusType::Counter),
            ("fwctl_policy_packets_total", PrometheusType::Counter),
            ("fwctl_policy_bytes_total", PrometheusType::Counter),
            ("fwctl_drop_reason_packets_total", PrometheusType::Counter),
            ("fwctl_generation", PrometheusType::Gauge),
            ("fwctl_last_apply_timestamp_seconds", PrometheusType::Gauge),
            ("fwctl_build_info", PrometheusType::Gauge),
        ] {
            let f = family(name);
            assert_eq!(f.family_type, kind, "{name}");
            assert!(!f.help.is_empty(), "{name} has no HELP");
            assert!(f.iter_samples().next().is_some(), "{name} has no sample");
        }
        let packets = by_rule(family("fwctl_rule_packets_total"));
        let bytes = by_rule(family("fwctl_rule_bytes_total"));
        let policy_packets = by_rule(family("fwctl_policy_packets_total"));
        let policy_bytes = by_rule(family("fwctl_policy_bytes_total"));
        // Both tables, both families: 5 + 1 filter rules, 1 nat rule; 3 + 3 + 4 + 4 policies.
        assert_eq!(packets.len(), 7, "{page}");
        assert_eq!(policy_packets.len(), 14, "{page}");

        let mut stable = true;
        let counted = [
            (&packets, false, true),
            (&bytes, false, false),
            (&policy_packets, true, true),
            (&policy_bytes, true, false),
        ];
        for (metrics, policy, is_packets) in counted {
            for ((family, table, chain, number), &served) in metrics {
                let n = if policy { 0 } else { *number };
                let key = (family.clone(), table.clone());
                let at = |l: &HashMap<(String, String), String>| {
                    let (p, b) = listed_counters(&l[&key], chain, n).unwrap();
                    if is_packets {
                        p
                    } else {
                        b
                    }
                };
                let (lo, hi) = (at(&before), at(&after));
                assert!(
                    lo <= served && served <= hi,
                    "{family} {table} {chain} {n}: served {served}, listed {lo} then {hi}\n{page}"
                );
                let scrape_rule = (family.as_str(), table.as_str(), chain.as_str(), n)
                    == ("ipv4", "filter", "INPUT", 1);
                stable &= lo == hi || scrape_rule || policy;
            }
        }
        if !stable {
            assert!(attempt < 5, "counters never held still for one scrape");
            continue;
        }
        // The known traffic, exactly: IPv4 UDP is 20 + 8 + 100 bytes, IPv6 40 + 8 + 50.
        let key =
            |f: &str, t: &str, c: &str, n: usize| (f.to_string(), t.to_string(), c.to_string(), n);
        assert_eq!(packets[&key("ipv4", "filter", "SVC", 1)], 4);
        assert_eq!(bytes[&key("ipv4", "filter", "SVC", 1)], 4 * 128);
        assert_eq!(packets[&key("ipv4", "filter", "SVC", 2)], 3);
        assert_eq!(packets[&key("ipv4", "filter", "INPUT", 3)], 2);
        assert_eq!(bytes[&key("ipv6", "filter", "INPUT", 1)], 2 * 98);
        assert!(policy_packets[&key("ipv4", "filter", "INPUT", 0)] >= 3);
        // The comment arrives intact through the format's escapes.
        let rules = family("fwctl_rule_packets_total");
        assert!(
            rules.iter_samples().any(|s| s
                .get_labelset()
                .is_ok_and(|l| l.get_label_value("comment") == Some("mDNS \"local\" \\o/"))),
            "{page}"
        );
        assert!(page.contains("fwctl_build_info{version=\""), "{page}");
        // The last change was this test's own, moments ago.
        let applied = family("fwctl_last_apply_timestamp_seconds")
            .iter_samples()
            .map(|s| match &s.value {
                PrometheusValue::Gauge(n) => n.as_f64(),
                other => panic!("unexpected sample {other:?}"),
            })
            .next()
            .unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            now - 120.0 < applied && applied <= now,
            "{applied} vs {now}"
        );
        break;
    }

    // Anything but /metrics is not found; the index points there.
    let (status, _, _) = http_get(&lab.host, "/nothing").unwrap();
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (_, _, index) = http_get(&lab.host, "/").unwrap();
    assert!(index.contains("/metrics"), "{index}");
}

/// A tmux server of the test's own (its socket in the temp dir, no user config), killed
/// and its files removed on drop, whatever happened.
struct Tmux {
    socket: std::path::PathBuf,
    conf: std::path::PathBuf,
    /// Where the shell around the command writes its exit status: tmux's own record of it
    /// (`pane_dead_status`) is left empty when the pty closes before tmux reaps the child.
    status: std::path::PathBuf,
}

impl Tmux {
    /// Runs `command` through /bin/sh in a detached 160x40 session. The pane stays after
    /// the command ends, so what it printed can still be read.
    fn start(command: &str) -> Tmux {
        let name = format!("fwo-top-{}", std::process::id());
        let dir = std::env::temp_dir();
        let tmux = Tmux {
            socket: dir.join(format!("{name}.sock")),
            conf: dir.join(format!("{name}.conf")),
            status: dir.join(format!("{name}.status")),
        };
        let _ = std::fs::remove_file(&tmux.status);
        std::fs::write(
            &tmux.conf,
            "set -g remain-on-exit on\nset -g default-shell /bin/sh\n",
        )
        .unwrap();
        let wrapped = format!("{command}; echo $? > {}", tmux.status.display());
        let out = tmux
            .cmd()
            .args([
                "new-session",
                "-d",
                "-s",
                "top",
                "-x",
                "160",
                "-y",
                "40",
                &wrapped,
            ])
            .output()
            .expect("running tmux");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket).arg("-f").arg(&self.conf);
        cmd
    }

    fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "top"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pane(&self, format: &str) -> String {
        let out = self
            .cmd()
            .args(["display-message", "-p", "-t", "top", format])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// None while the command runs, then its exit status.
    fn exit_status(&self) -> Option<i32> {
        let text = std::fs::read_to_string(&self.status).ok()?;
        text.trim().parse().ok()
    }

    /// What is running in the pane, for failure messages.
    fn processes(&self) -> String {
        let pid = self.pane("#{pane_pid}");
        let out = Command::new("ps")
            .args(["-o", "pid,stat,wchan:20,args", "--ppid", &pid, "-p", &pid])
            .output()
            .unwrap();
        format!(
            "pane {}\n{}",
            self.pane("dead=#{pane_dead} status=#{pane_dead_status} signal=#{pane_dead_signal}"),
            String::from_utf8_lossy(&out.stdout)
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().args(["kill-session", "-t", "top"]).output();
        let _ = self.cmd().arg("kill-server").output();
        for file in [&self.socket, &self.conf, &self.status] {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A line of `screen` (any frame of it) showing `rule` with a rate (first column) above zero.
fn busy_line<'a>(screen: &'a str, rule: &str) -> Option<&'a str> {
    screen
        .lines()
        .filter(|l| l.trim_end().ends_with(rule))
        .find(|l| l.split_whitespace().next().is_some_and(|rate| rate != "0"))
}

#[test]
fn top_shows_live_rates_in_a_terminal_and_quits_on_q() {
    let lab = Lab::named("fwo-top").unwrap();
    lab.host.apply(&[
        "-A INPUT -p udp --dport 5000 -j ACCEPT",
        "-A INPUT -p udp --dport 5353 -j ACCEPT",
    ]);
    lab.host.fwctl_ok(&["attach", HOST_IF]);
    let rule = "-A INPUT -p udp -m udp --dport 5353 -j ACCEPT";
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                udp_exchange(&lab, CLIENT_V4, HOST_V4, 5353, 20, 100);
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // Plain frames, for scripts: two of them, each with the busy rule.
            let plain = lab
                .host
                .fwctl_ok(&["top", "--iterations", "2", "-d", "0.5"]);
            assert_eq!(plain.matches("fwctl top - ").count(), 2, "{plain}");
            assert!(busy_line(&plain, rule).is_some(), "{plain}");

            let command = format!(
                "ip netns exec {} {} top",
                lab.host.name(),
                fwctl_bin().display()
            );
            let tmux = Tmux::start(&command);
            let deadline = Instant::now() + Duration::from_secs(10);
            let screen = loop {
                let screen = tmux.capture();
                if busy_line(&screen, rule).is_some() {
                    break screen;
                }
                assert!(
                    Instant::now() < deadline && tmux.exit_status().is_none(),
                    "no rate for {rule} on the screen:\n{screen}"
                );
                std::thread::sleep(Duration::from_millis(250));
            };
            assert!(screen.contains(HOST_IF), "{screen}");
            eprintln!("fwctl top in tmux:\n{screen}");

            tmux.cmd()
                .args(["send-keys", "-t", "top", "q"])
                .output()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Some(status) = tmux.exit_status() {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "fwctl top did not quit on q:\n{}\n{}",
                    tmux.capture(),
                    tmux.processes()
                );
                std::thread::sleep(Duration::from_millis(100));
            };
            assert_eq!(status, 0, "{}", tmux.capture());
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
}

/// What a client on the network can send the exporter: the status line of the answer, or
/// None if the connection was closed without one (a read error or EOF counts as closed).
fn exchange_raw(ns: &FwNs, request: Vec<u8>) -> Option<String> {
    ns.run(move || -> Option<String> {
        let addr: SocketAddr = EXPORTER.parse().ok()?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .ok()?;
        // The server may close while this is still being written.
        let _ = stream.write_all(&request);
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        let reply = String::from_utf8_lossy(&reply).into_owned();
        reply
            .lines()
            .next()
            .map(String::from)
            .filter(|l| !l.is_empty())
    })
    .ok()
    .flatten()
}

/// Opens a connection from inside the namespace and sends `bytes`, leaving it open.
fn connect(ns: &FwNs, bytes: &'static [u8]) -> TcpStream {
    ns.run(move || {
        let addr: SocketAddr = EXPORTER.parse().expect("address");
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
        s.write_all(bytes).expect("write");
        s
    })
    .expect("in the namespace")
}

/// True once the server has closed `stream` (EOF or reset), within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn exporter_survives_slow_oversized_malformed_and_many_clients() {
    let ns = FwNs::new("fwdexp").expect("namespace");
    ns.apply(&["-A INPUT -p tcp --dport 22 -j ACCEPT"]);
    let mut exporter = Exporter::start(&ns);
    scrape(&ns);

    // A slow client (half a request head, then nothing) and many idle connections do not
    // keep a scrape waiting, and are closed by the server.
    let mut slow = connect(&ns, b"GET /metr");
    let mut idle: Vec<TcpStream> = (0..300).map(|_| connect(&ns, b"")).collect();
    let start = Instant::now();
    assert!(scrape(&ns).contains("fwctl_rule_packets_total"));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // A client that asked for the page and never reads it holds no lock.
    let _stuck = connect(&ns, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let start = Instant::now();
    ns.fwctl_ok(&["-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "ACCEPT"]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    // Oversized and malformed requests are answered with an error or closed.
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Padding: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    big.extend(b"\r\n\r\n");
    let answer = exchange_raw(&ns, big);
    assert!(
        answer
            .as_deref()
            .is_none_or(|l| l.starts_with("HTTP/1.1 431")),
        "{answer:?}"
    );
    let answer = exchange_raw(&ns, b"\x16\x03\x01 not http at all\r\n\r\n".to_vec());
    assert!(
        answer
            .as_deref()
            .is_none_or(|l| l.starts_with("HTTP/1.1 400")),
        "{answer:?}"
    );
    let answer = exchange_raw(&ns, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
    assert_eq!(answer.as_deref(), Some("HTTP/1.1 405 Method Not Allowed"));

    // The server closes the slow and idle connections itself (head timeout).
    assert!(
        closed_within(&mut slow, Duration::from_secs(15)),
        "the slow client stayed"
    );
    for c in &mut idle {
        assert!(
            closed_within(c, Duration::from_secs(5)),
            "an idle connection stayed"
        );
    }
    assert!(
        exporter.0.try_wait().expect("try_wait").is_none(),
        "the exporter died"
    );
    assert!(scrape(&ns).contains("fwctl_rule_packets_total"));
}
