//! Classic BPF, run in pcapd with the meaning libpcap's own interpreter gives it
//! (`pcap_offline_filter`, with the captured length as the length on the wire, as
//! [`pcap::BpfProgram::filter`] calls it), for programs where some `jeq #k` compare with a
//! parameter: [`Program::accepting`] tells, in one run over a packet, every value of the
//! parameter for which the program keeps it. That is what lets a hundred filters of one
//! shape (`host X`, `udp dst port N`) cost one run and a hash lookup per packet instead of
//! a hundred runs.
//!
//! Only what libpcap's compiler makes for a savefile's link type is taken: a program with
//! another instruction, a jump out of the program, a scratch slot out of range, a division
//! by a zero constant or a shift by 32 or more is refused ([`Program::new`] gives `None`),
//! and keeps being run by libpcap.

use pcap::BpfProgram;

/// One instruction, as `struct bpf_insn` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Insn {
    /// Whether it is `jeq #k`: the only place a parameter may stand.
    pub fn is_jeq_k(&self) -> bool {
        self.code == JMP | JEQ | K
    }
}

/// The instructions of a compiled program (read through their `code jt jf k` form, the
/// fields of libpcap's type being private).
pub fn instructions(program: &BpfProgram) -> Option<Vec<Insn>> {
    program
        .get_instructions()
        .iter()
        .map(|i| {
            let text = i.to_string();
            let mut f = text.split(' ');
            let insn = Insn {
                code: f.next()?.parse().ok()?,
                jt: f.next()?.parse().ok()?,
                jf: f.next()?.parse().ok()?,
                k: f.next()?.parse().ok()?,
            };
            f.next().is_none().then_some(insn)
        })
        .collect()
}

const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;

const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;

const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;

const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const MUL: u16 = 0x20;
const DIV: u16 = 0x30;
const OR: u16 = 0x40;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const NEG: u16 = 0x80;
const MOD: u16 = 0x90;
const XOR: u16 = 0xa0;

const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;

const K: u16 = 0x00;
const X: u16 = 0x08;
const A: u16 = 0x10;

const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

const MEMWORDS: u32 = 16;

/// A program that pcapd can run, and which of its `jeq #k` compare with the parameter.
#[derive(Debug, Clone)]
pub struct Program {
    insns: Vec<Insn>,
    param: Vec<bool>,
}

/// The registers and scratch memory, all zero when a run starts.
#[derive(Debug, Clone, Copy, Default)]
struct Regs {
    a: u32,
    x: u32,
    mem: [u32; MEMWORDS as usize],
}

/// What [`Program::accepting`] found for one packet; its vectors are reused.
#[derive(Debug, Default)]
pub struct Accepting {
    /// Values of the parameter for which the packet is kept.
    pub values: Vec<u32>,
    /// Whether it is kept for every value not in `compared` (as `not host X` keeps the
    /// packets of every other host).
    pub others: bool,
    /// The values the packet's fields were compared with where the parameter stands.
    pub compared: Vec<u32>,
    forks: Vec<(usize, Regs, u32)>,
}

/// How a run ends: kept or not, as `pcap_offline_filter(...) > 0` says.
fn kept(ret: u32) -> bool {
    (ret as i32) > 0
}

impl Program {
    /// `insns` with the parameter at the `jeq #k` where `param` is true; `None` if pcapd
    /// cannot run it exactly as libpcap would.
    pub fn new(insns: Vec<Insn>, param: Vec<bool>) -> Option<Program> {
        if insns.is_empty() || param.len() != insns.len() {
            return None;
        }
        let n = insns.len();
        for (pc, (i, &p)) in insns.iter().zip(&param).enumerate() {
            if p && !i.is_jeq_k() {
                return None;
            }
            let next_in = pc + 1 < n;
            let ok = match i.code & 0x07 {
                LD => match i.code {
                    c if c == LD | IMM => next_in,
                    c if c == LD | MEM => next_in && i.k < MEMWORDS,
                    c if c == LD | W | LEN => next_in,
                    c if [W, H, B]
                        .iter()
                        .any(|&s| c == LD | s | ABS || c == LD | s | IND) =>
                    {
                        next_in
                    }
                    _ => false,
                },
                LDX => match i.code {
                    c if c == LDX | IMM || c == LDX | W | LEN || c == LDX | B | MSH => next_in,
                    c if c == LDX | MEM => next_in && i.k < MEMWORDS,
                    _ => false,
                },
                ST | STX => i.code & !0x07 == 0 && next_in && i.k < MEMWORDS,
                ALU => {
                    let op = i.code & 0xf0;
                    let src = i.code & 0x08;
                    i.code < 0x100
                        && next_in
                        && match op {
                            ADD | SUB | MUL | OR | AND | XOR => true,
                            DIV | MOD => src == X || i.k != 0,
                            LSH | RSH => src == X || i.k < 32,
                            NEG => src == K,
                            _ => false,
                        }
                }
                JMP => {
                    let op = i.code & 0xf0;
                    if i.code >= 0x100 {
                        false
                    } else if op == JA {
                        i.code == JMP | JA && (pc as u64 + 1 + u64::from(i.k)) < n as u64
                    } else {
                        matches!(op, JEQ | JGT | JGE | JSET)
                            && pc + 1 + usize::from(i.jt.max(i.jf)) < n
                    }
                }
                RET => i.code == RET | K || i.code == RET | A,
                MISC => (i.code == MISC | TAX || i.code == MISC | TXA) && next_in,
                _ => false,
            };
            if !ok {
                return None;
            }
        }
        Some(Program { insns, param })
    }

    /// Whether the program keeps `pkt`, the parameter being `value`.
    #[cfg(test)]
    pub fn keeps(&self, pkt: &[u8], value: u32) -> bool {
        let mut scratch = Accepting::default();
        kept(self.run(pkt, 0, Regs::default(), Some(value), &mut scratch))
    }

    /// Every value of the parameter for which the program keeps `pkt`, in `out`.
    pub fn accepting(&self, pkt: &[u8], out: &mut Accepting) {
        out.values.clear();
        out.compared.clear();
        out.forks.clear();
        out.others = kept(self.run(pkt, 0, Regs::default(), None, out));
        // Each fork went on with the parameter equal to a field: no further fork.
        while let Some((pc, regs, value)) = out.forks.pop() {
            if kept(self.run(pkt, pc, regs, Some(value), out)) {
                out.values.push(value);
            }
        }
    }

    /// Runs from `pc`. With `value` unknown, a parameter's `jeq` goes on as "not equal"
    /// and leaves the "equal" side, with the parameter now known, in `out.forks`.
    fn run(
        &self,
        pkt: &[u8],
        mut pc: usize,
        mut r: Regs,
        value: Option<u32>,
        out: &mut Accepting,
    ) -> u32 {
        let len = pkt.len() as u32;
        let load = |at: u32, size: u32| -> Option<u32> {
            // As libpcap checks, without overflowing.
            if at > len || size > len - at {
                return None;
            }
            let at = at as usize;
            Some(match size {
                4 => u32::from_be_bytes([pkt[at], pkt[at + 1], pkt[at + 2], pkt[at + 3]]),
                2 => u32::from(u16::from_be_bytes([pkt[at], pkt[at + 1]])),
                _ => u32::from(pkt[at]),
            })
        };
        let size_of = |code: u16| match code & 0x18 {
            W => 4,
            H => 2,
            _ => 1,
        };
        loop {
            let i = self.insns[pc];
            pc += 1;
            match i.code & 0x07 {
                RET => return if i.code == RET | K { i.k } else { r.a },
                LD => {
                    r.a = match i.code & 0xe0 {
                        IMM => i.k,
                        MEM => r.mem[i.k as usize],
                        LEN => len,
                        ABS => match load(i.k, size_of(i.code)) {
                            Some(v) => v,
                            None => return 0,
                        },
                        _ => {
                            // IND: libpcap refuses k or X past the end before adding them.
                            if i.k > len || r.x > len - i.k {
                                return 0;
                            }
                            match load(i.k + r.x, size_of(i.code)) {
                                Some(v) => v,
                                None => return 0,
                            }
                        }
                    }
                }
                LDX => {
                    r.x = match i.code & 0xe0 {
                        IMM => i.k,
                        MEM => r.mem[i.k as usize],
                        LEN => len,
                        _ => match load(i.k, 1) {
                            Some(v) => (v & 0xf) << 2,
                            None => return 0,
                        },
                    }
                }
                ST => r.mem[i.k as usize] = r.a,
                STX => r.mem[i.k as usize] = r.x,
                ALU => {
                    let v = if i.code & 0x08 == X { r.x } else { i.k };
                    r.a = match i.code & 0xf0 {
                        ADD => r.a.wrapping_add(v),
                        SUB => r.a.wrapping_sub(v),
                        MUL => r.a.wrapping_mul(v),
                        DIV | MOD if v == 0 => return 0,
                        DIV => r.a / v,
                        MOD => r.a % v,
                        OR => r.a | v,
                        AND => r.a & v,
                        XOR => r.a ^ v,
                        LSH => r.a.checked_shl(v).unwrap_or(0),
                        RSH => r.a.checked_shr(v).unwrap_or(0),
                        _ => r.a.wrapping_neg(),
                    }
                }
                JMP => {
                    let op = i.code & 0xf0;
                    if op == JA {
                        pc += i.k as usize;
                        continue;
                    }
                    let v = if i.code & 0x08 == X { r.x } else { i.k };
                    let taken = match op {
                        JEQ if self.param[pc - 1] => match value {
                            Some(p) => r.a == p,
                            None => {
                                if !out.compared.contains(&r.a) {
                                    out.compared.push(r.a);
                                    out.forks.push((pc + usize::from(i.jt), r, r.a));
                                }
                                false
                            }
                        },
                        JEQ => r.a == v,
                        JGT => r.a > v,
                        JGE => r.a >= v,
                        _ => r.a & v != 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                _ => {
                    if i.code == MISC | TAX {
                        r.x = r.a;
                    } else {
                        r.a = r.x;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{packets, FILTERS};
    use super::*;
    use crate::capture::device::compile_offline;

    #[test]
    fn runs_every_filter_as_libpcap_does() {
        let packets = packets();
        for filter in FILTERS {
            let compiled = compile_offline(1, filter).unwrap();
            let insns = instructions(&compiled).expect("instructions read back");
            let n = insns.len();
            let program =
                Program::new(insns, vec![false; n]).unwrap_or_else(|| panic!("{filter}: refused"));
            let mut kept = 0;
            for (i, p) in packets.iter().enumerate() {
                let libpcap = compiled.filter(p);
                assert_eq!(
                    program.keeps(p, 0),
                    libpcap,
                    "{filter}, packet {i}: {p:02x?}"
                );
                kept += usize::from(libpcap);
            }
            assert!(kept > 0 && kept < packets.len(), "{filter} keeps {kept}");
        }
    }

    #[test]
    fn refuses_what_it_would_not_run_as_libpcap_does() {
        let ret = Insn {
            code: RET | K,
            jt: 0,
            jf: 0,
            k: 1,
        };
        let with = |i: Insn| Program::new(vec![i, ret], vec![false, false]);
        let op = |code, k| Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        assert!(with(op(LD | IMM, 1)).is_some());
        assert!(with(op(ALU | DIV | K, 0)).is_none(), "a division by 0");
        assert!(with(op(ALU | LSH | K, 32)).is_none(), "a shift by 32");
        assert!(with(op(LD | MEM, 16)).is_none(), "a slot past the 16");
        assert!(with(op(JMP | JA, 1)).is_none(), "a jump past the end");
        assert!(with(op(0x0e, 0)).is_none(), "an unknown instruction");
        assert!(
            Program::new(vec![op(LD | IMM, 1)], vec![false]).is_none(),
            "no return"
        );
        assert!(
            Program::new(vec![op(LD | IMM, 1), ret], vec![true, false]).is_none(),
            "a parameter outside a jeq"
        );
    }
}
