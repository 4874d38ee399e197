//! What this CPU offers the kernels: which SIMD instructions they run,
//! chosen once per process, and how large its caches are.
//!
//! One binary carries the kernels three times, compiled for AVX-512, for
//! AVX2 + FMA and for plain x86-64 (SSE2, or the target's baseline on other
//! architectures): [`SimdLevel`]. The first kernel to run detects the CPU and
//! takes the widest level it has, lowered by the environment variable
//! `KETTLE_SIMD` (`avx512`, `avx2` or `portable`) when set, so that one
//! machine can test every level. The state's layout is the same at every
//! level (blocks of the AVX-512 width), so the level can change between two
//! runs, or even two gates, without touching a state.
//!
//! A build made with `-C target-cpu=…` may still use instructions outside
//! the kernels that an older CPU lacks: [`check`] says so instead of letting
//! the process die of SIGILL, and also refuses a `KETTLE_SIMD` it cannot
//! honour. The `kettle` binary and the [`Simulator`](crate::Simulator) call
//! it before any kernel runs.
//!
//! The sizes of the CPU's caches ([`Caches`]) are detected here too: cache
//! blocking sizes its chunks by them.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::SimError;

/// The environment variable that lowers the SIMD level.
pub const SIMD_ENV: &str = "KETTLE_SIMD";

/// An instruction set the kernels are compiled for, from narrowest to widest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// The target's baseline (SSE2 on x86-64, NEON on aarch64): runs anywhere.
    Portable,
    /// AVX2 with FMA (x86-64-v3: Intel since 2013, AMD since 2015).
    Avx2,
    /// AVX-512F (x86-64-v4: Intel Xeon since 2017, AMD since Zen 4).
    Avx512,
}

impl SimdLevel {
    /// Every level, narrowest first.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512];

    /// `"portable"`, `"avx2"` or `"avx512"`: the spelling of `KETTLE_SIMD`.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// The level named `name` (as [`SimdLevel::name`] spells it).
    pub fn from_name(name: &str) -> Option<SimdLevel> {
        SimdLevel::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The widest level this CPU runs.
    pub fn detected() -> SimdLevel {
        static DETECTED: OnceLock<SimdLevel> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                if has!("avx512f") && has!("avx2") && has!("fma") {
                    return SimdLevel::Avx512;
                }
                if has!("avx2") && has!("fma") {
                    return SimdLevel::Avx2;
                }
            }
            SimdLevel::Portable
        })
    }
}

impl fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `KETTLE_SIMD` asks for, once per process: `Ok(None)` when unset.
fn requested() -> &'static Result<Option<SimdLevel>, String> {
    static REQUESTED: OnceLock<Result<Option<SimdLevel>, String>> = OnceLock::new();
    REQUESTED.get_or_init(|| match std::env::var(SIMD_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => SimdLevel::from_name(&v).map(Some).ok_or(v),
        Err(std::env::VarError::NotUnicode(v)) => Err(v.to_string_lossy().into_owned()),
    })
}

/// The level [`set_simd_level`] chose: 0 for none, else 1 + its index in
/// [`SimdLevel::ALL`].
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// The level the kernels run: the widest this CPU has, lowered to
/// [`set_simd_level`]'s choice or else to `KETTLE_SIMD` when either is set.
/// Never above what the CPU has, so a bad setting cannot crash a kernel
/// ([`check`] reports it).
pub fn simd_level() -> SimdLevel {
    let detected = SimdLevel::detected();
    let chosen = match CHOSEN.load(Ordering::Relaxed) {
        0 => None,
        i => SimdLevel::ALL.get(usize::from(i) - 1).copied(),
    };
    let requested = requested().as_ref().ok().copied().flatten();
    chosen
        .or(requested)
        .map_or(detected, |level| level.min(detected))
}

/// Makes the kernels prepared from now on run at `level` (`None`: back to
/// the default of [`simd_level`]), for benchmarks and library users that
/// compare levels in one process. Operations already prepared keep theirs;
/// any mix is safe, as every level uses the same state layout.
///
/// # Errors
/// [`SimError::SimdSetting`] when this CPU cannot run `level`.
pub fn set_simd_level(level: Option<SimdLevel>) -> Result<(), SimError> {
    let code = match level {
        Some(l) if l > SimdLevel::detected() => {
            return Err(SimError::SimdSetting(format!(
                "this CPU cannot run {l} kernels; it runs {}",
                SimdLevel::detected()
            )));
        }
        // `ALL` lists the levels in declaration order.
        Some(l) => 1 + l as u8,
        None => 0,
    };
    CHOSEN.store(code, Ordering::Relaxed);
    Ok(())
}

/// Checks that the CPU has every instruction set this build was compiled
/// for, and that `KETTLE_SIMD`, if set, names a level it runs.
///
/// # Errors
/// [`SimError::UnsupportedCpu`] naming the first missing feature, or
/// [`SimError::SimdSetting`] for an unknown or unsupported `KETTLE_SIMD`.
pub fn check() -> Result<(), SimError> {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! require {
            ($($f:tt),*) => {$(
                if cfg!(target_feature = $f) && !std::arch::is_x86_feature_detected!($f) {
                    return Err(SimError::UnsupportedCpu { missing: $f });
                }
            )*};
        }
        require!(
            "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx2", "fma", "avx", "bmi2"
        );
    }
    match requested() {
        Ok(Some(level)) if *level > SimdLevel::detected() => Err(SimError::SimdSetting(format!(
            "{SIMD_ENV}={level} asks for instructions this CPU lacks; it runs {}",
            SimdLevel::detected()
        ))),
        Ok(_) => Ok(()),
        Err(value) => Err(SimError::SimdSetting(format!(
            "{SIMD_ENV}={value:?} is not a level; use one of portable, avx2, avx512"
        ))),
    }
}

/// The data caches a core works from, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caches {
    /// The L2 cache of one core.
    pub l2: usize,
    /// The last-level cache (L3) the core shares with its neighbours; equal
    /// to `l2` on a CPU without one.
    pub l3: usize,
}

impl Caches {
    /// What the CPU reports (`cpuid` on x86-64), once per process. Where it
    /// reports nothing (other architectures, a hypervisor that hides the
    /// leaf) a core of the reference machine: 1 MiB of L2 and 16 MiB of L3
    /// for it.
    pub fn detected() -> Caches {
        static DETECTED: OnceLock<Caches> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let fallback = Caches {
                l2: 1 << 20,
                l3: 16 << 20,
            };
            let Some((l2, l3)) = cache_sizes() else {
                return fallback;
            };
            let l2 = l2.unwrap_or(fallback.l2);
            Caches {
                l2,
                l3: l3.unwrap_or(l2).max(l2),
            }
        })
    }
}

/// The sizes of the L2 and L3 data (or unified) caches, from `cpuid`'s
/// deterministic cache parameters (leaf 4, or 0x8000_001D on AMD).
#[cfg(target_arch = "x86_64")]
fn cache_sizes() -> Option<(Option<usize>, Option<usize>)> {
    use raw_cpuid::{CacheType, CpuId};
    let mut sizes = (None, None);
    for cache in CpuId::new().get_cache_parameters()? {
        if !matches!(cache.cache_type(), CacheType::Data | CacheType::Unified) {
            continue;
        }
        let bytes = cache.associativity()
            * cache.physical_line_partitions()
            * cache.coherency_line_size()
            * cache.sets();
        match cache.level() {
            2 => sizes.0 = Some(bytes),
            3 => sizes.1 = Some(bytes),
            _ => {}
        }
    }
    Some(sizes)
}

#[cfg(not(target_arch = "x86_64"))]
fn cache_sizes() -> Option<(Option<usize>, Option<usize>)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_machine_runs_this_build() {
        // If this fails, the tests would have crashed anyway.
        check().unwrap();
        assert!(simd_level() <= SimdLevel::detected());
    }

    #[test]
    fn levels_round_trip_their_names() {
        for level in SimdLevel::ALL {
            assert_eq!(SimdLevel::from_name(level.name()), Some(level));
        }
        assert_eq!(SimdLevel::from_name("sse9"), None);
        assert!(SimdLevel::Portable < SimdLevel::Avx2 && SimdLevel::Avx2 < SimdLevel::Avx512);
    }

    #[test]
    fn caches_have_plausible_sizes() {
        let caches = Caches::detected();
        assert!((64 << 10..=1 << 30).contains(&caches.l2), "{caches:?}");
        assert!(caches.l3 >= caches.l2 && caches.l3 <= 4 << 30, "{caches:?}");
    }
}
