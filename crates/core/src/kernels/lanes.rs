//! The kernels' vectors, once per SIMD level, and the switch into code
//! compiled for that level.
//!
//! `wide` fixes its instructions when Kettle is compiled, so it serves only
//! the portable level (the target's baseline). The AVX2 and AVX-512 vectors
//! are written here on `std::arch`: each is a full block half (8 f64 or
//! 16 f32 lanes: one AVX-512 register, two AVX2 registers), so the state has
//! the same layout at every level. Their operations are `#[inline(always)]`
//! wrappers of intrinsics; they become single instructions only inside a
//! function compiled with the level's target features, which is what
//! [`Lanes::vectorize`] provides: kernels run each range of their work
//! through it, and everything the closure calls is inlined into it. Hence
//! the rule for code inside: closures carry `#[inline(always)]` (a closure
//! is its own function, compiled without the level's features unless
//! inlined), and iterator adapters with vector code in their closures are
//! written as loops. `.ci/run` checks the binary for intrinsics left as calls.

#![allow(unsafe_code)]

use std::fmt::Debug;
use std::ops::{Add, Mul, Sub};

use crate::cpu::SimdLevel;
use crate::float::Float;

/// One vector of a block half (`F::LANES` values) at one SIMD level.
pub trait Lanes<F: Float>:
    Copy + Send + Sync + Debug + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    /// The level whose instructions this vector uses.
    const LEVEL: SimdLevel;
    /// Runs `f` inside a function compiled for [`Self::LEVEL`].
    fn vectorize<R>(f: impl FnOnce() -> R) -> R;
    /// Loads a block half as stored in the state.
    fn load(from: &F::V) -> Self;
    /// Stores into a block half of the state.
    fn store(self, to: &mut F::V);
    /// Every lane `x`.
    fn splat(x: F) -> Self;
    /// `self * b + c`, fused.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// `c - self * b`, fused.
    fn mul_neg_add(self, b: Self, c: Self) -> Self;
    /// Lane `i` of the result is lane `i ^ mask` of `self` (`mask < LANES`).
    fn xor_lanes(self, mask: usize) -> Self;
}

/// `f::<F, V>` with `V` the vector of `level`, as a function pointer: the one
/// place that maps a level to its vectors.
macro_rules! at_level {
    ($level:expr, $f:ident::<$F:ident>) => {
        match $level {
            $crate::cpu::SimdLevel::Portable => $f::<$F, $F::V>,
            $crate::cpu::SimdLevel::Avx2 => $f::<$F, $F::Avx2>,
            $crate::cpu::SimdLevel::Avx512 => $f::<$F, $F::Avx512>,
        }
    };
}
pub(crate) use at_level;

/// `v` as a block half of the state (to read its lanes with `F::lane`).
#[inline(always)]
pub(crate) fn to_storage<F: Float, V: Lanes<F>>(v: V) -> F::V {
    let mut out = F::splat(F::from_f64(0.0));
    v.store(&mut out);
    out
}

/// The lanes of `v`, summed in f64.
#[inline(always)]
pub(crate) fn lane_sum<F: Float, V: Lanes<F>>(v: V) -> f64 {
    let out = to_storage::<F, V>(v);
    (0..F::LANES).map(|l| F::lane(&out, l).to_f64()).sum()
}

/// `out[i] = v[i ^ M]` through the vector's array form: with the mask a
/// constant, the compiler turns it into one permute (or a register swap).
macro_rules! xor_shuffle {
    ($v:expr, $mask:expr, $ty:ty, $f:ty, $arr:ty, [$($m:literal),*]) => {{
        #[inline(always)]
        fn shuffle<const M: usize>(v: $ty) -> $ty {
            let a: $arr = to_array(v);
            from_array(std::array::from_fn(|i| a[i ^ M]))
        }
        const LANES: usize = <$f as Float>::LANES;
        match $mask {
            0 => $v,
            $($m if $m < LANES => shuffle::<{ $m % LANES }>($v),)*
            _ => unreachable!("lane mask {} out of range", $mask),
        }
    }};
}

/// The portable level: `wide`'s vectors, which are also the storage type.
macro_rules! portable {
    ($f:ty, $v:ty, $arr:ty, [$($m:literal),*]) => {
        impl Lanes<$f> for $v {
            const LEVEL: SimdLevel = SimdLevel::Portable;
            #[inline(always)]
            fn vectorize<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            #[inline(always)]
            fn load(from: &$v) -> Self {
                *from
            }
            #[inline(always)]
            fn store(self, to: &mut $v) {
                *to = self;
            }
            #[inline(always)]
            fn splat(x: $f) -> Self {
                <$v>::splat(x)
            }
            #[inline(always)]
            fn mul_add(self, b: Self, c: Self) -> Self {
                <$v>::mul_add(self, b, c)
            }
            #[inline(always)]
            fn mul_neg_add(self, b: Self, c: Self) -> Self {
                <$v>::mul_neg_add(self, b, c)
            }
            #[inline(always)]
            fn xor_lanes(self, mask: usize) -> Self {
                #[inline(always)]
                fn to_array(v: $v) -> $arr {
                    v.to_array()
                }
                #[inline(always)]
                fn from_array(a: $arr) -> $v {
                    <$v>::new(a)
                }
                xor_shuffle!(self, mask, $v, $f, $arr, [$($m),*])
            }
        }
    };
}

portable!(f64, wide::f64x8, [f64; 8], [1, 2, 3, 4, 5, 6, 7]);
portable!(
    f32,
    wide::f32x16,
    [f32; 16],
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
);

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! AVX2 (two registers per block half) and AVX-512 (one register).
    //!
    //! SAFETY, for every `unsafe` block here: the intrinsics need the
    //! level's CPU features, and these types are only used by kernels
    //! that [`crate::cpu::simd_level`] selected, which never exceeds what
    //! the CPU has (`SimdLevel::detected`). Loads and stores go through
    //! references to the state's block halves, which are 64-byte aligned
    //! (`wide`'s `f64x8` and `f32x16` are `align(64)`).

    #![allow(clippy::undocumented_unsafe_blocks)]

    use std::arch::x86_64::*;
    use std::ops::{Add, Mul, Sub};

    use super::Lanes;
    use crate::cpu::SimdLevel;
    use crate::float::Float;

    /// Features of each level, as `#[target_feature]` spells them.
    macro_rules! vectorize {
        ($features:literal) => {
            #[inline(always)]
            fn vectorize<R>(f: impl FnOnce() -> R) -> R {
                #[target_feature(enable = $features)]
                unsafe fn with_features<R>(f: impl FnOnce() -> R) -> R {
                    f()
                }
                unsafe { with_features(f) }
            }
        };
    }

    /// One vector type: its representation, the arithmetic, and `Lanes`.
    macro_rules! vector {
        (
            $name:ident, $f:ty, $storage:ty, $arr:ty, $repr:ty, $level:expr, $features:literal,
            load: $load:expr, store: $store:expr, splat: $splat:expr,
            fmadd: $fmadd:ident, fnmadd: $fnmadd:ident,
            add: $add:ident, sub: $sub:ident, mul: $mul:ident,
            masks: [$($m:literal),*]
        ) => {
            #[derive(Clone, Copy, Debug)]
            pub struct $name($repr);

            impl Add for $name {
                type Output = Self;
                #[inline(always)]
                fn add(self, o: Self) -> Self {
                    $name(self.0.map2(o.0, #[inline(always)] |a, b| unsafe { $add(a, b) }))
                }
            }
            impl Sub for $name {
                type Output = Self;
                #[inline(always)]
                fn sub(self, o: Self) -> Self {
                    $name(self.0.map2(o.0, #[inline(always)] |a, b| unsafe { $sub(a, b) }))
                }
            }
            impl Mul for $name {
                type Output = Self;
                #[inline(always)]
                fn mul(self, o: Self) -> Self {
                    $name(self.0.map2(o.0, #[inline(always)] |a, b| unsafe { $mul(a, b) }))
                }
            }

            impl Lanes<$f> for $name {
                const LEVEL: SimdLevel = $level;
                vectorize!($features);
                #[inline(always)]
                fn load(from: &$storage) -> Self {
                    let p = (from as *const $storage).cast::<$f>();
                    $name(unsafe { $load(p) })
                }
                #[inline(always)]
                fn store(self, to: &mut $storage) {
                    let p = (to as *mut $storage).cast::<$f>();
                    unsafe { $store(p, self.0) }
                }
                #[inline(always)]
                fn splat(x: $f) -> Self {
                    $name(unsafe { $splat(x) })
                }
                #[inline(always)]
                fn mul_add(self, b: Self, c: Self) -> Self {
                    $name(self.0.map3(b.0, c.0, #[inline(always)] |a, b, c| unsafe { $fmadd(a, b, c) }))
                }
                #[inline(always)]
                fn mul_neg_add(self, b: Self, c: Self) -> Self {
                    $name(self.0.map3(b.0, c.0, #[inline(always)] |a, b, c| unsafe { $fnmadd(a, b, c) }))
                }
                #[inline(always)]
                fn xor_lanes(self, mask: usize) -> Self {
                    #[inline(always)]
                    fn to_array(v: $name) -> $arr {
                        unsafe { std::mem::transmute::<$repr, $arr>(v.0) }
                    }
                    #[inline(always)]
                    fn from_array(a: $arr) -> $name {
                        $name(unsafe { std::mem::transmute::<$arr, $repr>(a) })
                    }
                    xor_shuffle!(self, mask, $name, $f, $arr, [$($m),*])
                }
            }
        };
    }

    /// A vector's registers, one or a pair: the intrinsics apply to each.
    trait Regs: Copy {
        type Reg;
        fn map2(self, b: Self, f: impl Fn(Self::Reg, Self::Reg) -> Self::Reg) -> Self;
        fn map3(
            self,
            b: Self,
            c: Self,
            f: impl Fn(Self::Reg, Self::Reg, Self::Reg) -> Self::Reg,
        ) -> Self;
    }
    macro_rules! one_register {
        ($t:ty) => {
            impl Regs for $t {
                type Reg = $t;
                #[inline(always)]
                fn map2(self, b: Self, f: impl Fn($t, $t) -> $t) -> Self {
                    f(self, b)
                }
                #[inline(always)]
                fn map3(self, b: Self, c: Self, f: impl Fn($t, $t, $t) -> $t) -> Self {
                    f(self, b, c)
                }
            }
        };
    }
    macro_rules! register_pair {
        ($t:ty) => {
            impl Regs for [$t; 2] {
                type Reg = $t;
                #[inline(always)]
                fn map2(self, b: Self, f: impl Fn($t, $t) -> $t) -> Self {
                    [f(self[0], b[0]), f(self[1], b[1])]
                }
                #[inline(always)]
                fn map3(self, b: Self, c: Self, f: impl Fn($t, $t, $t) -> $t) -> Self {
                    [f(self[0], b[0], c[0]), f(self[1], b[1], c[1])]
                }
            }
        };
    }
    one_register!(__m512d);
    one_register!(__m512);
    register_pair!(__m256d);
    register_pair!(__m256);

    #[inline(always)]
    unsafe fn load_pd_pair(p: *const f64) -> [__m256d; 2] {
        unsafe { [_mm256_load_pd(p), _mm256_load_pd(p.add(4))] }
    }
    #[inline(always)]
    unsafe fn store_pd_pair(p: *mut f64, v: [__m256d; 2]) {
        unsafe {
            _mm256_store_pd(p, v[0]);
            _mm256_store_pd(p.add(4), v[1]);
        }
    }
    #[inline(always)]
    unsafe fn splat_pd_pair(x: f64) -> [__m256d; 2] {
        let v = unsafe { _mm256_set1_pd(x) };
        [v, v]
    }
    #[inline(always)]
    unsafe fn load_ps_pair(p: *const f32) -> [__m256; 2] {
        unsafe { [_mm256_load_ps(p), _mm256_load_ps(p.add(8))] }
    }
    #[inline(always)]
    unsafe fn store_ps_pair(p: *mut f32, v: [__m256; 2]) {
        unsafe {
            _mm256_store_ps(p, v[0]);
            _mm256_store_ps(p.add(8), v[1]);
        }
    }
    #[inline(always)]
    unsafe fn splat_ps_pair(x: f32) -> [__m256; 2] {
        let v = unsafe { _mm256_set1_ps(x) };
        [v, v]
    }

    vector!(
        Avx2F64, f64, wide::f64x8, [f64; 8], [__m256d; 2], SimdLevel::Avx2, "avx,avx2,fma",
        load: load_pd_pair, store: store_pd_pair, splat: splat_pd_pair,
        fmadd: _mm256_fmadd_pd, fnmadd: _mm256_fnmadd_pd,
        add: _mm256_add_pd, sub: _mm256_sub_pd, mul: _mm256_mul_pd,
        masks: [1, 2, 3, 4, 5, 6, 7]
    );
    vector!(
        Avx2F32, f32, wide::f32x16, [f32; 16], [__m256; 2], SimdLevel::Avx2, "avx,avx2,fma",
        load: load_ps_pair, store: store_ps_pair, splat: splat_ps_pair,
        fmadd: _mm256_fmadd_ps, fnmadd: _mm256_fnmadd_ps,
        add: _mm256_add_ps, sub: _mm256_sub_ps, mul: _mm256_mul_ps,
        masks: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    );
    vector!(
        Avx512F64, f64, wide::f64x8, [f64; 8], __m512d, SimdLevel::Avx512,
        "avx,avx2,fma,avx512f",
        load: _mm512_load_pd, store: _mm512_store_pd, splat: _mm512_set1_pd,
        fmadd: _mm512_fmadd_pd, fnmadd: _mm512_fnmadd_pd,
        add: _mm512_add_pd, sub: _mm512_sub_pd, mul: _mm512_mul_pd,
        masks: [1, 2, 3, 4, 5, 6, 7]
    );
    vector!(
        Avx512F32, f32, wide::f32x16, [f32; 16], __m512, SimdLevel::Avx512,
        "avx,avx2,fma,avx512f",
        load: _mm512_load_ps, store: _mm512_store_ps, splat: _mm512_set1_ps,
        fmadd: _mm512_fmadd_ps, fnmadd: _mm512_fnmadd_ps,
        add: _mm512_add_ps, sub: _mm512_sub_ps, mul: _mm512_mul_ps,
        masks: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::SimdLevel;

    /// Every operation of `V` against plain scalar arithmetic, run inside
    /// `V::vectorize` as the kernels do.
    fn check<F: Float, V: Lanes<F>>() {
        let input = |k: f64| F::from_fn(|i| F::from_f64(k * i as f64 - 3.5));
        let (a, b, c) = (input(0.5), input(-1.25), input(2.0));
        V::vectorize(|| {
            let (va, vb, vc) = (V::load(&a), V::load(&b), V::load(&c));
            let lanes = |v: V| {
                let out = to_storage::<F, V>(v);
                (0..F::LANES)
                    .map(|i| F::lane(&out, i).to_f64())
                    .collect::<Vec<_>>()
            };
            let x = |v: &F::V, i: usize| F::lane(v, i).to_f64();
            let want = |f: &dyn Fn(usize) -> f64| (0..F::LANES).map(f).collect::<Vec<_>>();
            assert_eq!(lanes(va + vb), want(&|i| x(&a, i) + x(&b, i)));
            assert_eq!(lanes(va - vb), want(&|i| x(&a, i) - x(&b, i)));
            assert_eq!(lanes(va * vb), want(&|i| x(&a, i) * x(&b, i)));
            assert_eq!(
                lanes(va.mul_add(vb, vc)),
                want(&|i| x(&a, i).mul_add(x(&b, i), x(&c, i)))
            );
            assert_eq!(
                lanes(va.mul_neg_add(vb, vc)),
                want(&|i| (-x(&a, i)).mul_add(x(&b, i), x(&c, i)))
            );
            assert_eq!(lanes(V::splat(F::from_f64(1.5))), vec![1.5; F::LANES]);
            for mask in 0..F::LANES {
                assert_eq!(lanes(va.xor_lanes(mask)), want(&|i| x(&a, i ^ mask)));
            }
        });
    }

    fn check_level<F: Float>(level: SimdLevel) {
        at_level!(level, check::<F>)();
    }

    #[test]
    fn every_level_this_cpu_runs_computes_the_same_lanes() {
        for level in SimdLevel::ALL
            .into_iter()
            .filter(|&l| l <= SimdLevel::detected())
        {
            check_level::<f64>(level);
            check_level::<f32>(level);
        }
    }
}
