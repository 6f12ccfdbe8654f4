//! A fixed-seed stand-in for libFuzzer's mutations, for the stable tests: the same inputs
//! on every run, made by small edits to the corpus.

/// A xorshift64 generator: the same inputs on every run.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value; zero is replaced).
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Values that sit on the edges parsers check.
const INTERESTING: &[u32] = &[
    0,
    1,
    15,
    16,
    24,
    64,
    0x7f,
    0x80,
    0xff,
    65_535,
    65_536,
    262_144,
    262_145,
    0x7fff_ffff,
    u32::MAX,
];

/// Characters the text parsers look for.
const PRINTABLE: &[u8] = b" -.:/[]@0123456789abcdefgikmnpstuxzGKMTZ\"=\n";

/// An input made from a corpus entry (or from nothing) by one to four random edits.
pub fn mutate(rng: &mut XorShift, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = if corpus.is_empty() || rng.below(8) == 0 {
        (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect()
    } else {
        corpus[rng.below(corpus.len())].clone()
    };
    for _ in 0..=rng.below(4) {
        let at = if v.is_empty() { 0 } else { rng.below(v.len()) };
        match rng.below(7) {
            0 if !v.is_empty() => v[at] ^= 1 << rng.below(8),
            1 if !v.is_empty() => v[at] = INTERESTING[rng.below(INTERESTING.len())] as u8,
            2 => v.truncate(at),
            3 => {
                let n = rng.below(16);
                let printable = rng.below(2) == 0;
                let bytes: Vec<u8> = (0..n)
                    .map(|_| match printable {
                        true => PRINTABLE[rng.below(PRINTABLE.len())],
                        false => rng.next_u64() as u8,
                    })
                    .collect();
                v.splice(at..at, bytes);
            }
            4 if !v.is_empty() => {
                let end = (at + 1 + rng.below(32)).min(v.len());
                let chunk = v[at..end].to_vec();
                let to = rng.below(v.len() + 1);
                v.splice(to..to, chunk);
            }
            5 if v.len() >= 4 => {
                let at = rng.below(v.len() - 3);
                let word = INTERESTING[rng.below(INTERESTING.len())];
                let bytes = match rng.below(2) {
                    0 => word.to_le_bytes(),
                    _ => word.to_be_bytes(),
                };
                v[at..at + 4].copy_from_slice(&bytes);
            }
            _ => v.push(rng.next_u64() as u8),
        }
    }
    v
}
