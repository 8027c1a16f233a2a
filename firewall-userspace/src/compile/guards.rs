//! A rule's matches that no field bitmap can hold (rate limits, set membership) as the
//! guards XDP checks on the entry the classifier found (firewall-common `Guard`), and the
//! token buckets (`Meter`s) those guards draw from.
//!
//! A rate limit takes a token when a packet reaches it, so where XDP cannot check it exactly
//! once per packet that iptables would check, the rule is left to netfilter (DEFER):
//! - on a jump or a RETURN, since the jump's conditions are repeated on every entry of the
//!   chain it leads to, and a RETURN restarts the search;
//! - `-m connlimit`, which counts conntrack entries XDP cannot see.

use firewall_common::{
    limit_bucket, newcomer_bucket, Guard, Meter, GUARD_HASHLIMIT, GUARD_HL_ABOVE, GUARD_HL_DSTIP,
    GUARD_HL_DSTPORT, GUARD_HL_SRCIP, GUARD_HL_SRCPORT, GUARD_LIMIT, GUARD_NEGATE, GUARD_SET,
    GUARD_SET_DIM0_DST, GUARD_SET_DIM1_DST, GUARD_SET_PORTS, MAX_GUARD_CHAIN,
    MAX_HASHLIMIT_ENTRIES,
};

use crate::rules::{
    ratelimit::{
        interval_ns, HASHLIMIT_SCALE, HL_DSTIP, HL_DSTPORT, HL_SRCIP, HL_SRCPORT, LIMIT_SCALE,
    },
    Family, Rule, Target,
};
use crate::sets::model::{Registry, SetKind};

/// One guard of an entry, with the meter it needs installed (if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardSpec {
    pub guard: Guard,
    pub meter: Option<(u32, Meter)>,
}

/// What XDP makes of a rule's guarded matches.
pub enum RuleGuards {
    /// Checked at XDP, in this order, after the rule's fields.
    Check(Vec<GuardSpec>),
    /// Only netfilter can judge the rule.
    Defer,
}

fn meter(interval_ns: u64, burst: u32) -> Meter {
    Meter {
        tat_ns: 0,
        interval_ns,
        burst,
        _pad: 0,
    }
}

/// The guards of `rule` (its own, not those of jumps around it). Set matches name the
/// set's storage in force; one `sets` does not know (a compile without them) leaves the
/// rule to netfilter.
pub fn of_rule(rule: &Rule, family: Family, sets: &Registry) -> RuleGuards {
    let rate = &rule.spec.rate;
    if rate.connlimit.is_some() {
        return RuleGuards::Defer;
    }
    let mut out = Vec::new();
    for m in &rule.spec.sets {
        let Ok((def, _)) = sets.resolve(&m.value, family) else {
            return RuleGuards::Defer;
        };
        let mut flags = 0;
        for (on, flag) in [
            (m.negated, GUARD_NEGATE),
            (m.value.dst.first() == Some(&true), GUARD_SET_DIM0_DST),
            (m.value.dst.get(1) == Some(&true), GUARD_SET_DIM1_DST),
            (def.kind == SetKind::HashIpPort, GUARD_SET_PORTS),
        ] {
            if on {
                flags |= flag;
            }
        }
        out.push(GuardSpec {
            guard: Guard {
                kind: GUARD_SET,
                flags,
                id: def.storage,
                ..Guard::default()
            },
            meter: None,
        });
    }
    // Membership takes nothing from the packet's way: checked again on every entry a jump's
    // conditions are repeated on, it gives the same answer.
    let idempotent = out.len();
    if let Some(l) = &rate.limit {
        out.push(GuardSpec {
            guard: Guard {
                kind: GUARD_LIMIT,
                id: limit_bucket(rule.slot),
                ..Guard::default()
            },
            meter: Some((
                limit_bucket(rule.slot),
                meter(interval_ns(l.avg, LIMIT_SCALE), l.burst),
            )),
        });
    }
    if let Some(h) = &rate.hashlimit {
        let full = if family == Family::V6 { 128 } else { 32 };
        let mut flags = 0;
        for (bit, flag) in [
            (HL_SRCIP, GUARD_HL_SRCIP),
            (HL_DSTIP, GUARD_HL_DSTIP),
            (HL_SRCPORT, GUARD_HL_SRCPORT),
            (HL_DSTPORT, GUARD_HL_DSTPORT),
        ] {
            if h.mode & bit != 0 {
                flags |= flag;
            }
        }
        if h.above {
            flags |= GUARD_HL_ABOVE;
        }
        // Newcomers: at most `htable-max` new keys per `htable-expire`, the rate at which
        // iptables' table could take them (it drops packets whose key finds it full).
        let max = h
            .htable_max
            .filter(|m| *m > 0)
            .unwrap_or(MAX_HASHLIMIT_ENTRIES)
            .min(MAX_HASHLIMIT_ENTRIES);
        let newcomer_interval = (h.expire_ms().max(1) * 1_000_000) / max as u64;
        let id = newcomer_bucket(rule.slot);
        out.push(GuardSpec {
            guard: Guard {
                kind: GUARD_HASHLIMIT,
                flags,
                id,
                interval_ns: interval_ns(h.avg, HASHLIMIT_SCALE),
                burst: h.burst,
                masks: h.srcmask.unwrap_or(full) as u32 | (h.dstmask.unwrap_or(full) as u32) << 8,
                ..Guard::default()
            },
            meter: Some((id, meter(newcomer_interval.max(1), max))),
        });
    }
    if out.len() == idempotent {
        return RuleGuards::Check(out);
    }
    if matches!(rule.spec.target, Target::Jump(_) | Target::Return) {
        return RuleGuards::Defer;
    }
    RuleGuards::Check(out)
}

/// Whether an entry with this many guards can be checked at XDP.
pub fn fits(guards: usize) -> bool {
    guards <= MAX_GUARD_CHAIN as usize
}
