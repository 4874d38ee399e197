//! The two precisions a state can have, and the SIMD vector each one uses.
//!
//! Each precision fixes a `wide` vector of `LANES` values, and a state is
//! stored in blocks of `LANES` real parts followed by `LANES` imaginary parts
//! (qsim's layout): kernels then do complex arithmetic with vertical vector
//! operations only. The vector is one machine register: with AVX-512, f64
//! uses `F64V` and f32 `F32V`; otherwise `f64x4` and `f32x8` (one AVX2
//! register). Wider vectors on AVX2 would be register pairs, and a dense
//! kernel's inputs, outputs and coefficients would then no longer fit in the
//! 16 registers (measured: 1.8 instead of 1.3 passes for a 1-qubit gate).

use std::fmt::Debug;
use std::ops::{Add, Mul, Sub};

#[cfg(not(target_feature = "avx512f"))]
use wide::{f32x8 as F32V, f64x4 as F64V};
#[cfg(target_feature = "avx512f")]
use wide::{f32x16 as F32V, f64x8 as F64V};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point precision for state vectors: `f64` or `f32`.
///
/// Sealed: kernels rely on the exact lane counts of the two implementations.
pub trait Float:
    sealed::Sealed + Copy + Send + Sync + Debug + Default + PartialEq + PartialOrd + 'static
{
    /// The SIMD vector of `LANES` values.
    type V: Copy
        + Send
        + Sync
        + Debug
        + Add<Output = Self::V>
        + Sub<Output = Self::V>
        + Mul<Output = Self::V>;
    /// Values per vector.
    const LANES: usize;
    /// `log2(LANES)`: qubits below this index live inside one block.
    const LOG_LANES: u32;
    /// `"f64"` or `"f32"`.
    const NAME: &'static str;

    /// Converts from f64 (rounding for f32).
    fn from_f64(x: f64) -> Self;
    /// Converts to f64 (exact).
    fn to_f64(self) -> f64;
    /// A vector with every lane `x`.
    fn splat(x: Self) -> Self::V;
    /// A vector whose lane `i` is `f(i)`.
    fn from_fn(f: impl FnMut(usize) -> Self) -> Self::V;
    /// Lane `i` of `v`.
    fn lane(v: &Self::V, i: usize) -> Self;
    /// `a * b + c`, fused where the CPU allows.
    fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `c - a * b`, fused where the CPU allows.
    fn mul_neg_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The vector whose lane `i` is lane `i ^ mask` of `v` (`mask < LANES`).
    fn xor_lanes(v: Self::V, mask: usize) -> Self::V;
}

/// `out[i] = v[i ^ M]`: a constant shuffle the compiler turns into one permute.
macro_rules! xor_shuffle {
    ($v:expr, $mask:expr, $ty:ty, $lanes:expr, [$($m:literal),*]) => {{
        #[inline(always)]
        fn shuffle<const M: usize>(v: $ty) -> $ty {
            let a = v.to_array();
            <$ty>::new(std::array::from_fn(|i| a[i ^ M]))
        }
        const LANES: usize = $lanes;
        match $mask {
            0 => $v,
            $($m if $m < LANES => shuffle::<{ $m % LANES }>($v),)*
            _ => unreachable!("lane mask {} out of range", $mask),
        }
    }};
}

#[cfg(target_feature = "avx512f")]
const F64_LOG_LANES: u32 = 3;
#[cfg(not(target_feature = "avx512f"))]
const F64_LOG_LANES: u32 = 2;

impl Float for f64 {
    type V = F64V;
    const LANES: usize = 1 << F64_LOG_LANES;
    const LOG_LANES: u32 = F64_LOG_LANES;
    const NAME: &'static str = "f64";

    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn splat(x: Self) -> F64V {
        F64V::splat(x)
    }
    #[inline(always)]
    fn from_fn(f: impl FnMut(usize) -> Self) -> F64V {
        F64V::new(std::array::from_fn(f))
    }
    #[inline(always)]
    fn lane(v: &F64V, i: usize) -> Self {
        v.as_array()[i]
    }
    #[inline(always)]
    fn mul_add(a: F64V, b: F64V, c: F64V) -> F64V {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn mul_neg_add(a: F64V, b: F64V, c: F64V) -> F64V {
        a.mul_neg_add(b, c)
    }
    #[inline(always)]
    fn xor_lanes(v: F64V, mask: usize) -> F64V {
        xor_shuffle!(v, mask, F64V, <f64 as Float>::LANES, [1, 2, 3, 4, 5, 6, 7])
    }
}

impl Float for f32 {
    type V = F32V;
    const LANES: usize = 2 * f64::LANES;
    const LOG_LANES: u32 = F64_LOG_LANES + 1;
    const NAME: &'static str = "f32";

    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn splat(x: Self) -> F32V {
        F32V::splat(x)
    }
    #[inline(always)]
    fn from_fn(f: impl FnMut(usize) -> Self) -> F32V {
        F32V::new(std::array::from_fn(f))
    }
    #[inline(always)]
    fn lane(v: &F32V, i: usize) -> Self {
        v.as_array()[i]
    }
    #[inline(always)]
    fn mul_add(a: F32V, b: F32V, c: F32V) -> F32V {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn mul_neg_add(a: F32V, b: F32V, c: F32V) -> F32V {
        a.mul_neg_add(b, c)
    }
    #[inline(always)]
    fn xor_lanes(v: F32V, mask: usize) -> F32V {
        xor_shuffle!(
            v,
            mask,
            F32V,
            <f32 as Float>::LANES,
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<F: Float>() {
        let v = F::from_fn(|i| F::from_f64(i as f64));
        for mask in 0..F::LANES {
            let p = F::xor_lanes(v, mask);
            for i in 0..F::LANES {
                assert_eq!(F::lane(&p, i).to_f64(), (i ^ mask) as f64);
            }
        }
        let fma = F::mul_add(v, v, F::splat(F::from_f64(1.0)));
        let neg = F::mul_neg_add(v, v, F::splat(F::from_f64(1.0)));
        assert_eq!(F::lane(&fma, 3).to_f64(), 10.0);
        assert_eq!(F::lane(&neg, 3).to_f64(), -8.0);
    }

    #[test]
    fn lane_operations() {
        check::<f64>();
        check::<f32>();
    }
}
