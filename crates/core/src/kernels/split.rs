//! How an operation's qubits map onto the blocked layout: which select
//! blocks, which select lanes, and how to enumerate the groups of blocks one
//! application touches.

use std::ops::Range;

use kettle_ir::{Control, Qubit};
use smallvec::SmallVec;

use crate::float::Float;
use crate::state::segment_blocks;

/// An operation's qubits, split between block bits and lane bits.
#[derive(Debug)]
pub(crate) struct Split {
    /// `(bit in the matrix index, bit in the block index)` per high target.
    high: SmallVec<[(u32, u32); 6]>,
    /// `(bit in the matrix index, bit in the lane index)` per low target.
    low: SmallVec<[(u32, u32); 4]>,
    /// Lane bits of the low targets.
    pub(crate) low_mask: usize,
    low_ctrl_mask: usize,
    low_ctrl_value: usize,
    /// Block bits fixed within a group (high targets and high controls), ascending.
    fixed: SmallVec<[u32; 8]>,
    /// Block bits of the high controls that must be 1.
    ctrl_base: usize,
    /// Block offset of each high-target pattern `h` from a group's base.
    pub(crate) offsets: SmallVec<[usize; 8]>,
    pub(crate) num_groups: usize,
    /// Consecutive groups whose bases are consecutive blocks in one
    /// segment of the buffer: `2^(lowest fixed block bit)`, at most a segment.
    run_len: usize,
    block_count: usize,
    /// Every lane mask the low targets can flip, `0` first.
    pub(crate) perms: SmallVec<[usize; 16]>,
}

impl Split {
    pub(crate) fn new<F: Float>(n: u32, targets: &[Qubit], controls: &[Control]) -> Split {
        let lb = F::LOG_LANES;
        let mut s = Split {
            high: SmallVec::new(),
            low: SmallVec::new(),
            low_mask: 0,
            low_ctrl_mask: 0,
            low_ctrl_value: 0,
            fixed: SmallVec::new(),
            ctrl_base: 0,
            offsets: SmallVec::new(),
            num_groups: 0,
            run_len: 0,
            block_count: (1usize << n).div_ceil(F::LANES),
            perms: SmallVec::new(),
        };
        for (i, &q) in targets.iter().enumerate() {
            if q >= lb {
                s.high.push((i as u32, q - lb));
                s.fixed.push(q - lb);
            } else {
                s.low.push((i as u32, q));
                s.low_mask |= 1 << q;
            }
        }
        for c in controls {
            if c.qubit >= lb {
                s.fixed.push(c.qubit - lb);
                s.ctrl_base |= usize::from(c.on) << (c.qubit - lb);
            } else {
                s.low_ctrl_mask |= 1 << c.qubit;
                s.low_ctrl_value |= usize::from(c.on) << c.qubit;
            }
        }
        s.fixed.sort_unstable();
        let block_bits = n.saturating_sub(lb);
        s.num_groups = 1usize << (block_bits as usize - s.fixed.len());
        s.run_len = s
            .fixed
            .first()
            .map_or(s.num_groups, |&p| 1usize << p)
            .min(segment_blocks::<F>());
        s.offsets = (0..1usize << s.high.len())
            .map(|h| {
                s.high
                    .iter()
                    .enumerate()
                    .map(|(i, &(_, b))| ((h >> i) & 1) << b)
                    .sum()
            })
            .collect();
        // Submasks of low_mask in increasing order, 0 first.
        let mut m = 0usize;
        loop {
            s.perms.push(m);
            if m == s.low_mask {
                break;
            }
            m = (m.wrapping_sub(s.low_mask)) & s.low_mask;
        }
        s
    }

    /// Blocks per group, `2^(high targets)`.
    pub(crate) fn nb(&self) -> usize {
        self.offsets.len()
    }

    /// Blocks in the state.
    pub(crate) fn block_count(&self) -> usize {
        self.block_count
    }

    /// First block of group `g`: `g`'s bits spread over the free block bits,
    /// zeros at the high targets, the required values at the high controls.
    /// Distinct groups give disjoint block sets `base + offsets[h]`.
    #[inline(always)]
    pub(crate) fn group_base(&self, g: usize) -> usize {
        let mut b = g;
        for &p in &self.fixed {
            b = ((b >> p) << (p + 1)) | (b & ((1 << p) - 1));
        }
        b | self.ctrl_base
    }

    /// Calls `f(base, len)` for the groups in `groups`, a run at a time:
    /// group `g + i` of a run starting at `g` has base `base + i`, and
    /// `base + offsets[h] + i` (for `i < len`) lie in one aligned window of
    /// `run_len` blocks, so inside one segment of the buffer. Kernels then
    /// stream through each run with plain pointer offsets.
    #[inline(always)]
    pub(crate) fn for_each_run(&self, groups: Range<usize>, mut f: impl FnMut(usize, usize)) {
        let mut g = groups.start;
        while g < groups.end {
            let end = ((g / self.run_len + 1) * self.run_len).min(groups.end);
            f(self.group_base(g), end - g);
            g = end;
        }
    }

    /// Matrix index seen by lane `lane` of the block with high pattern `h`.
    pub(crate) fn row(&self, h: usize, lane: usize) -> usize {
        let hi: usize = self
            .high
            .iter()
            .enumerate()
            .map(|(i, &(m, _))| ((h >> i) & 1) << m)
            .sum();
        let lo: usize = self.low.iter().map(|&(m, l)| ((lane >> l) & 1) << m).sum();
        hi | lo
    }

    /// The inverse of [`row`](Self::row): the high pattern and the low-target
    /// lane bits of matrix index `r`.
    pub(crate) fn unrow(&self, r: usize) -> (usize, usize) {
        let h = self
            .high
            .iter()
            .enumerate()
            .map(|(i, &(m, _))| ((r >> m) & 1) << i)
            .sum();
        let lanes = self.low.iter().map(|&(m, l)| ((r >> m) & 1) << l).sum();
        (h, lanes)
    }

    /// Whether the low controls hold in lane `lane`.
    pub(crate) fn lane_controls_hold(&self, lane: usize) -> bool {
        lane & self.low_ctrl_mask == self.low_ctrl_value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_the_controlled_subspace_once() {
        // 8 qubits at f64 (2 or 3 lane bits): targets 1 (low) and 5 (high),
        // controls 6 (=1) and 0 (=0).
        let lb = <f64 as Float>::LOG_LANES;
        let s = Split::new::<f64>(8, &[1, 5], &[Control::one(6), Control::zero(0)]);
        assert_eq!(s.nb(), 2);
        assert_eq!(s.perms.as_slice(), &[0, 2]);
        let mut seen = std::collections::BTreeSet::new();
        for g in 0..s.num_groups {
            for &o in &s.offsets {
                let b = s.group_base(g) + o;
                assert!(b < s.block_count());
                assert_eq!((b >> (6 - lb)) & 1, 1, "control qubit 6 is set");
                assert!(seen.insert(b), "block {b} visited twice");
            }
        }
        assert_eq!(seen.len(), s.block_count() / 2);
        for r in 0..4 {
            let (h, lanes) = s.unrow(r);
            assert_eq!(s.row(h, lanes), r);
        }
    }
}
