//! Measurement outcomes: classical register values and how often each occurred.

use std::collections::{BTreeMap, HashMap};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use smallvec::SmallVec;

/// The value of all classical bits after one shot (bit `i` is clbit `i`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ClassicalValue(SmallVec<[u64; 1]>);

impl ClassicalValue {
    /// All `num_clbits` bits zero.
    pub fn zeros(num_clbits: u32) -> Self {
        ClassicalValue(SmallVec::from_elem(0, (num_clbits as usize).div_ceil(64)))
    }

    /// Bit `i`.
    pub fn get(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| (w >> (i % 64)) & 1 == 1)
    }

    /// Sets bit `i` (which must be below the bit count it was made with).
    pub fn set(&mut self, i: u32, value: bool) {
        let w = &mut self.0[i as usize / 64];
        let bit = 1u64 << (i % 64);
        if value {
            *w |= bit;
        } else {
            *w &= !bit;
        }
    }

    /// The bits as a string of `num_clbits` characters, clbit 0 rightmost
    /// (Qiskit's convention).
    pub fn to_bitstring(&self, num_clbits: u32) -> String {
        (0..num_clbits)
            .rev()
            .map(|i| if self.get(i) { '1' } else { '0' })
            .collect()
    }

    /// The bits as a hexadecimal number, `0x…` (Qiskit's `memory` keys).
    pub fn to_hex(&self) -> String {
        let mut s = String::from("0x");
        let mut started = false;
        for w in self.0.iter().rev() {
            if started {
                s.push_str(&format!("{w:016x}"));
            } else if *w != 0 {
                s.push_str(&format!("{w:x}"));
                started = true;
            }
        }
        if !started {
            s.push('0');
        }
        s
    }
}

/// How many shots gave each classical value.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Counts {
    num_clbits: u32,
    counts: HashMap<ClassicalValue, u64>,
}

impl Counts {
    /// No shots yet, over `num_clbits` bits.
    pub fn new(num_clbits: u32) -> Self {
        Counts {
            num_clbits,
            counts: HashMap::new(),
        }
    }

    /// Adds `shots` occurrences of `value`.
    pub fn add(&mut self, value: ClassicalValue, shots: u64) {
        *self.counts.entry(value).or_insert(0) += shots;
    }

    /// Number of classical bits.
    pub fn num_clbits(&self) -> u32 {
        self.num_clbits
    }

    /// Total shots.
    pub fn shots(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Occurrences of the outcome written as a bitstring (clbit 0 rightmost).
    pub fn get(&self, bitstring: &str) -> u64 {
        self.counts
            .iter()
            .find(|(v, _)| v.to_bitstring(self.num_clbits) == bitstring)
            .map_or(0, |(_, &n)| n)
    }

    /// The outcomes and their counts, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&ClassicalValue, u64)> {
        self.counts.iter().map(|(v, &n)| (v, n))
    }

    /// Counts keyed by bitstring (clbit 0 rightmost), sorted.
    pub fn to_bitstrings(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .map(|(v, &n)| (v.to_bitstring(self.num_clbits), n))
            .collect()
    }

    /// Counts keyed by hexadecimal value.
    pub fn to_hex(&self) -> BTreeMap<String, u64> {
        self.counts.iter().map(|(v, &n)| (v.to_hex(), n)).collect()
    }

    /// Every shot's outcome in a seeded random order (what Qiskit calls a
    /// result's `memory`): one entry per shot, so the caller bounds the
    /// shot count. The counts are one multinomial draw, and a uniformly
    /// random arrangement of them is distributed as that many independent
    /// shots in sequence, so this is the record of the shots the counts
    /// summarise.
    pub fn to_memory(&self, seed: u64) -> Vec<ClassicalValue> {
        let sorted: BTreeMap<&ClassicalValue, u64> =
            self.counts.iter().map(|(v, &n)| (v, n)).collect();
        let mut memory = Vec::with_capacity(usize::try_from(self.shots()).unwrap_or(0));
        for (value, n) in sorted {
            memory.extend(std::iter::repeat_n(value, n as usize).cloned());
        }
        memory.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(seed));
        memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_holds_every_shot_in_a_seeded_order() {
        let mut counts = Counts::new(2);
        let mut one = ClassicalValue::zeros(2);
        one.set(0, true);
        counts.add(ClassicalValue::zeros(2), 300);
        counts.add(one.clone(), 700);
        let memory = counts.to_memory(5);
        assert_eq!(memory.len(), 1000);
        assert_eq!(memory.iter().filter(|v| **v == one).count(), 700);
        assert_eq!(memory, counts.to_memory(5));
        assert_ne!(memory, counts.to_memory(6));
        // Shuffled: the first 300 are not all the zero outcome, as sorted
        // order would have them.
        assert!(memory[..300].contains(&one));
        assert!(Counts::new(3).to_memory(1).is_empty());
    }

    #[test]
    fn bit_order_is_qiskits() {
        let mut v = ClassicalValue::zeros(70);
        v.set(0, true);
        v.set(65, true);
        let s = v.to_bitstring(70);
        assert_eq!(s.len(), 70);
        assert!(s.ends_with('1'));
        assert_eq!(&s[4..5], "1");
        assert_eq!(v.to_hex(), "0x20000000000000001");
        let mut c = Counts::new(2);
        let mut one = ClassicalValue::zeros(2);
        one.set(0, true);
        c.add(one.clone(), 3);
        c.add(one, 2);
        assert_eq!(c.get("01"), 5);
        assert_eq!(c.shots(), 5);
        assert_eq!(ClassicalValue::zeros(3).to_hex(), "0x0");
    }
}
