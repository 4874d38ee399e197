//! The two precisions a state can have, and the SIMD vectors each one uses.
//!
//! A state is stored in blocks of `LANES` real parts followed by `LANES`
//! imaginary parts (qsim's layout): kernels then do complex arithmetic with
//! vertical vector operations only. `LANES` is the AVX-512 width (8 at f64,
//! 16 at f32) whatever the CPU: one register there, two with AVX2, so the
//! layout does not depend on the SIMD level the kernels run at (see
//! [`crate::cpu`]). `Float::V` is the portable vector of a block half, which
//! code outside the kernels uses; the kernels load the same memory into the
//! vector of their level (`Float::Avx2`, `Float::Avx512`).

use std::fmt::Debug;
use std::ops::{Add, Mul, Sub};

use wide::{f32x16 as F32V, f64x8 as F64V};

use crate::kernels::Lanes;

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
        + Mul<Output = Self::V>
        + Lanes<Self>;
    /// The kernels' vector at the AVX2 level.
    #[doc(hidden)]
    type Avx2: Lanes<Self>;
    /// The kernels' vector at the AVX-512 level.
    #[doc(hidden)]
    type Avx512: Lanes<Self>;
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
}

#[cfg(target_arch = "x86_64")]
use crate::kernels::x86::{Avx2F32, Avx2F64, Avx512F32, Avx512F64};
// Elsewhere only the portable level exists (`SimdLevel::detected`).
#[cfg(not(target_arch = "x86_64"))]
use {F32V as Avx2F32, F32V as Avx512F32, F64V as Avx2F64, F64V as Avx512F64};

impl Float for f64 {
    type V = F64V;
    type Avx2 = Avx2F64;
    type Avx512 = Avx512F64;
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
}

impl Float for f32 {
    type V = F32V;
    type Avx2 = Avx2F32;
    type Avx512 = Avx512F32;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<F: Float>() {
        let v = F::from_fn(|i| F::from_f64(i as f64));
        // The portable vector's arithmetic is its `Lanes` implementation.
        let fma = Lanes::mul_add(v, v, F::splat(F::from_f64(1.0)));
        let neg = Lanes::mul_neg_add(v, v, F::splat(F::from_f64(1.0)));
        assert_eq!(F::lane(&fma, 3).to_f64(), 10.0);
        assert_eq!(F::lane(&neg, 3).to_f64(), -8.0);
        assert_eq!(
            std::mem::size_of::<F::V>(),
            64,
            "a block half is one cache line"
        );
        assert_eq!(std::mem::align_of::<F::V>(), 64);
    }

    #[test]
    fn lane_operations() {
        check::<f64>();
        check::<f32>();
    }
}
