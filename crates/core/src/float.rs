//! The two precisions a state can have, and the SIMD vector each one uses.
//!
//! Each precision fixes a `wide` vector of `LANES` values, and a state is
//! stored in blocks of `LANES` real parts followed by `LANES` imaginary parts
//! (qsim's layout): kernels then do complex arithmetic with vertical vector
//! operations only. f64 uses `f64x8`, f32 uses `f32x16`: both are one 512-bit
//! register on AVX-512 and two 256-bit registers on AVX2 (see `kettle_core::cpu`).

use std::fmt::Debug;
use std::ops::{Add, Mul, Sub};

use wide::{f32x16, f64x8};

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
    ($v:expr, $mask:expr, $ty:ty, $lanes:literal, [$($m:literal),*]) => {{
        #[inline(always)]
        fn shuffle<const M: usize>(v: $ty) -> $ty {
            let a = v.to_array();
            <$ty>::new(std::array::from_fn(|i| a[i ^ M]))
        }
        match $mask {
            0 => $v,
            $($m => shuffle::<$m>($v),)*
            _ => unreachable!("lane mask {} out of range", $mask),
        }
    }};
}

impl Float for f64 {
    type V = f64x8;
    const LANES: usize = 8;
    const LOG_LANES: u32 = 3;
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
    fn splat(x: Self) -> f64x8 {
        f64x8::splat(x)
    }
    #[inline(always)]
    fn from_fn(f: impl FnMut(usize) -> Self) -> f64x8 {
        f64x8::new(std::array::from_fn(f))
    }
    #[inline(always)]
    fn lane(v: &f64x8, i: usize) -> Self {
        v.as_array()[i]
    }
    #[inline(always)]
    fn mul_add(a: f64x8, b: f64x8, c: f64x8) -> f64x8 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn mul_neg_add(a: f64x8, b: f64x8, c: f64x8) -> f64x8 {
        a.mul_neg_add(b, c)
    }
    #[inline(always)]
    fn xor_lanes(v: f64x8, mask: usize) -> f64x8 {
        xor_shuffle!(v, mask, f64x8, 8, [1, 2, 3, 4, 5, 6, 7])
    }
}

impl Float for f32 {
    type V = f32x16;
    const LANES: usize = 16;
    const LOG_LANES: u32 = 4;
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
    fn splat(x: Self) -> f32x16 {
        f32x16::splat(x)
    }
    #[inline(always)]
    fn from_fn(f: impl FnMut(usize) -> Self) -> f32x16 {
        f32x16::new(std::array::from_fn(f))
    }
    #[inline(always)]
    fn lane(v: &f32x16, i: usize) -> Self {
        v.as_array()[i]
    }
    #[inline(always)]
    fn mul_add(a: f32x16, b: f32x16, c: f32x16) -> f32x16 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn mul_neg_add(a: f32x16, b: f32x16, c: f32x16) -> f32x16 {
        a.mul_neg_add(b, c)
    }
    #[inline(always)]
    fn xor_lanes(v: f32x16, mask: usize) -> f32x16 {
        xor_shuffle!(
            v,
            mask,
            f32x16,
            16,
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
