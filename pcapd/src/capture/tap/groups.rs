//! Which member of a shared ring runs what for each packet.
//!
//! Members with the same filter text run it once. Members whose compiled filters differ
//! only in one constant that their `jeq`s compare with (`host 10.0.0.1` and `host
//! 10.0.0.2`; `udp dst port 5000` and `udp dst port 5001`) form a group: one run of the
//! shared form over the packet tells every value it is kept for
//! ([`Program::accepting`]), and a hash lookup finds their members. A group is only formed
//! from programs that are exactly its form with the member's value put back in, so each
//! member keeps exactly what libpcap would keep for it.

use std::collections::HashMap;

use super::classic::{Accepting, Insn, Program};

/// What a member does for each packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Runs its own filter (with libpcap).
    Alone,
    /// Takes the result of an earlier member with the same filter text.
    Follows(usize),
    /// Gets its result from a group, run before the members.
    Grouped,
}

/// Filters of one shape, run once for all their members.
#[derive(Debug)]
pub(super) struct Group {
    program: Program,
    /// Members (indices in the ring's list) by the value their filter puts in the shape.
    by_value: HashMap<u32, Vec<usize>>,
    /// Every member with its value.
    members: Vec<(u32, usize)>,
    scratch: Accepting,
}

impl Group {
    /// Adds to `hits` each member whose filter keeps `pkt`.
    fn mark(&mut self, pkt: &[u8], hits: &mut Vec<usize>) {
        self.program.accepting(pkt, &mut self.scratch);
        for v in &self.scratch.values {
            hits.extend_from_slice(self.by_value.get(v).map_or(&[][..], Vec::as_slice));
        }
        if self.scratch.others {
            for &(v, i) in &self.members {
                if !self.scratch.compared.contains(&v) {
                    hits.push(i);
                }
            }
        }
    }
}

/// What a shared ring's thread runs for each packet, worked out once per change of its
/// members: per packet it visits the members that run a filter of their own, the groups
/// and the members that keep the packet, not every member.
#[derive(Debug, Default)]
pub(super) struct Plan {
    roles: Vec<Role>,
    groups: Vec<Group>,
    alone: Vec<usize>,
    follows: Vec<(usize, usize)>,
    /// Which members keep the packet at hand (all false between packets).
    kept: Vec<bool>,
    hits: Vec<usize>,
}

impl Plan {
    /// The plan for members with these filter texts and compiled instructions (`None`
    /// when they could not be read).
    pub(super) fn new(members: &[(&str, Option<Vec<Insn>>)]) -> Plan {
        let (roles, groups) = plan(members);
        let alone = (0..roles.len())
            .filter(|&i| roles[i] == Role::Alone)
            .collect();
        let follows = roles
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match *r {
                Role::Follows(l) => Some((i, l)),
                _ => None,
            })
            .collect();
        Plan {
            kept: vec![false; roles.len()],
            hits: Vec::with_capacity(roles.len()),
            roles,
            groups,
            alone,
            follows,
        }
    }

    /// The members (indices, each once) whose filter keeps `pkt`; `own(i)` runs member
    /// `i`'s filter for those that run their own.
    pub(super) fn select(&mut self, pkt: &[u8], mut own: impl FnMut(usize) -> bool) -> &[usize] {
        self.hits.clear();
        for g in &mut self.groups {
            g.mark(pkt, &mut self.hits);
        }
        for &i in &self.alone {
            if own(i) {
                self.hits.push(i);
            }
        }
        // The members followed are grouped or alone: their verdicts are all in `hits`.
        for &i in &self.hits {
            self.kept[i] = true;
        }
        for &(i, l) in &self.follows {
            if self.kept[l] {
                self.hits.push(i);
            }
        }
        for &i in &self.hits {
            self.kept[i] = false;
        }
        &self.hits
    }

    pub(super) fn members(&self) -> usize {
        self.roles.len()
    }

    /// How many groups, and how many members they hold.
    pub(super) fn grouped(&self) -> (usize, usize) {
        let held = self.groups.iter().map(|g| g.members.len()).sum();
        (self.groups.len(), held)
    }
}

/// Each member's role and the groups, from the members' filter texts and compiled
/// instructions (`None` when they could not be read).
fn plan(members: &[(&str, Option<Vec<Insn>>)]) -> (Vec<Role>, Vec<Group>) {
    let mut roles = Vec::with_capacity(members.len());
    let mut first: HashMap<&str, usize> = HashMap::new();
    // A program with one of its `jeq` constants taken out wherever it stands, for every
    // constant it compares with: two programs with the same such form are that form with
    // their own value put back in.
    type Form = Vec<(u16, u8, u8, Option<u32>)>;
    let mut forms: HashMap<Form, Vec<(u32, usize)>> = HashMap::new();
    for (i, (text, insns)) in members.iter().enumerate() {
        let leader = *first.entry(text).or_insert(i);
        if leader != i {
            roles.push(Role::Follows(leader));
            continue;
        }
        roles.push(Role::Alone);
        let Some(insns) = insns else { continue };
        let mut values: Vec<u32> = insns.iter().filter(|x| x.is_jeq_k()).map(|x| x.k).collect();
        values.sort_unstable();
        values.dedup();
        for v in values {
            let form = insns
                .iter()
                .map(|x| {
                    let param = x.is_jeq_k() && x.k == v;
                    (x.code, x.jt, x.jf, (!param).then_some(x.k))
                })
                .collect();
            forms.entry(form).or_default().push((v, i));
        }
    }
    // The forms most members share first; a member joins one group at most.
    let mut forms: Vec<(Form, Vec<(u32, usize)>)> =
        forms.into_iter().filter(|(_, m)| m.len() >= 2).collect();
    forms.sort_by_key(|(_, m)| (std::cmp::Reverse(m.len()), m[0].1));
    let mut groups = Vec::new();
    for (form, with_values) in forms {
        let with_values: Vec<(u32, usize)> = with_values
            .into_iter()
            .filter(|&(_, i)| roles[i] == Role::Alone)
            .collect();
        if with_values.len() < 2 {
            continue;
        }
        let param: Vec<bool> = form.iter().map(|f| f.3.is_none()).collect();
        let insns = form
            .iter()
            .map(|&(code, jt, jf, k)| Insn {
                code,
                jt,
                jf,
                k: k.unwrap_or(0),
            })
            .collect();
        let Some(program) = Program::new(insns, param) else {
            continue;
        };
        let mut by_value: HashMap<u32, Vec<usize>> = HashMap::new();
        for &(v, i) in &with_values {
            by_value.entry(v).or_default().push(i);
            roles[i] = Role::Grouped;
        }
        groups.push(Group {
            program,
            by_value,
            members: with_values,
            scratch: Accepting::default(),
        });
    }
    (roles, groups)
}

#[cfg(test)]
mod tests {
    use super::super::classic::instructions;
    use super::super::fixtures::{packets, FILTERS};
    use super::*;
    use crate::capture::device::compile_offline;
    use pcap::BpfProgram;

    fn compile(filters: &[String]) -> Vec<BpfProgram> {
        filters
            .iter()
            .map(|f| compile_offline(1, f).unwrap())
            .collect()
    }

    /// The plan of a shared ring whose members have `filters`, compiled.
    fn planned(filters: &[String], compiled: &[BpfProgram]) -> Plan {
        let members: Vec<(&str, Option<Vec<Insn>>)> = filters
            .iter()
            .zip(compiled)
            .map(|(f, c)| (f.as_str(), instructions(c)))
            .collect();
        Plan::new(&members)
    }

    /// Runs `filters` as a shared ring would, and checks each member against libpcap.
    fn check(filters: &[String]) -> (Vec<Role>, usize) {
        let compiled = compile(filters);
        let mut plan = planned(filters, &compiled);
        let mut alone_runs = 0;
        for (n, p) in packets().iter().enumerate() {
            let mut hits = plan
                .select(p, |i| {
                    alone_runs += 1;
                    compiled[i].filter(p)
                })
                .to_vec();
            hits.sort_unstable();
            let want: Vec<usize> = (0..filters.len())
                .filter(|&i| compiled[i].filter(p))
                .collect();
            assert_eq!(hits, want, "packet {n}: {p:02x?}, roles {:?}", plan.roles);
        }
        let alone = plan.roles.iter().filter(|&&r| r == Role::Alone).count();
        assert_eq!(alone_runs, alone * packets().len(), "only those alone run");
        (plan.roles.clone(), plan.groups.len())
    }

    #[test]
    fn filters_of_one_shape_are_run_once_and_keep_what_libpcap_keeps() {
        let mut filters: Vec<String> = Vec::new();
        for h in [
            "10.202.1.1",
            "10.202.2.1",
            "10.0.0.1",
            "127.0.0.1",
            "10.9.9.9",
        ] {
            filters.push(format!("host {h}"));
            filters.push(format!("not host {h}"));
            filters.push(format!("src host {h} or arp"));
        }
        for p in [0u16, 53, 80, 5000, 5001, 5255, 9] {
            filters.push(format!("udp dst port {p}"));
            filters.push(format!("port {p}"));
            filters.push(format!("tcp src port {p}"));
        }
        filters.push("udp dst port 5000".into());
        filters.push("udp dst port 5000 ".into());
        for f in FILTERS {
            filters.push((*f).into());
        }
        let (roles, groups) = check(&filters);
        let count = |r: Role| roles.iter().filter(|&&x| x == r).count();
        assert!(groups >= 6, "{groups} groups, roles {roles:?}");
        assert!(count(Role::Grouped) >= 36, "{roles:?}");
        let first = filters
            .iter()
            .position(|f| f == "udp dst port 5000")
            .unwrap();
        assert_eq!(
            roles[filters.len() - FILTERS.len() - 2],
            Role::Follows(first)
        );
        assert_eq!(roles[first], Role::Grouped);
    }

    #[test]
    fn a_filter_differing_in_two_constants_runs_alone() {
        let filters: Vec<String> = [
            "udp dst port 5000",
            "udp dst port 5001",
            "tcp dst port 5002",
            "udp dst port 5003",
        ]
        .map(String::from)
        .to_vec();
        let (roles, groups) = check(&filters);
        assert_eq!(groups, 1);
        assert_eq!(
            roles,
            [Role::Grouped, Role::Grouped, Role::Alone, Role::Grouped]
        );
    }

    /// What the shared ring's thread spends per packet on the filters of the benchmark's
    /// 84 shared captures (`host 10.202.H.1` and `udp dst port P` in turn), each run by
    /// libpcap and as groups: `cargo test --release -p pcapd -- --ignored filters_cost
    /// --nocapture`.
    #[test]
    #[ignore = "a measurement, run in release"]
    fn filters_cost() {
        let filters: Vec<String> = (0..84u32)
            .map(|i| match i % 2 {
                0 => format!("host 10.202.{}.1", i / 2),
                _ => format!("udp dst port {}", 5000 + i / 2),
            })
            .collect();
        let compiled = compile(&filters);
        let mut plan = planned(&filters, &compiled);
        assert_eq!(plan.grouped(), (2, 84), "{:?}", plan.roles);
        let frames: Vec<Vec<u8>> = (0..4096u32)
            .map(|i| {
                let mut f = vec![0u8; 64];
                f[12..14].copy_from_slice(&[0x08, 0x00]);
                f[14] = 0x45;
                f[23] = [17, 6][(i % 2) as usize];
                f[26..30].copy_from_slice(&[10, 250, 0, 1]);
                f[30..34].copy_from_slice(&[10, 202, (i * 7 % 256) as u8, 1]);
                f[36..38].copy_from_slice(&(5000 + (i * 13 % 256) as u16).to_be_bytes());
                f
            })
            .collect();
        let n = 200_000usize;
        let t = std::time::Instant::now();
        let mut hits = 0usize;
        for i in 0..n {
            let f = std::hint::black_box(&frames[i % frames.len()]);
            hits += compiled.iter().filter(|c| c.filter(f)).count();
        }
        let each = t.elapsed().as_nanos() as f64 / n as f64;
        let t = std::time::Instant::now();
        let mut grouped_hits = 0usize;
        for i in 0..n {
            let f = std::hint::black_box(&frames[i % frames.len()]);
            grouped_hits += plan.select(f, |_| unreachable!("all grouped")).len();
        }
        let grouped = t.elapsed().as_nanos() as f64 / n as f64;
        assert_eq!(hits, grouped_hits);
        println!(
            "84 filters per packet: each run by libpcap {each:.0} ns, as 2 groups {grouped:.0} ns"
        );
    }
}
