//! Which SIMD instructions this build uses, and whether this CPU has them.
//!
//! `wide` picks its instructions when Kettle is compiled (`-C target-cpu`),
//! so one binary cannot switch between AVX-512 and AVX2 at run time. Builds
//! in this repository target x86-64-v3 (AVX2 + FMA, see `.cargo/config.toml`);
//! AVX-512 builds use `-C target-cpu=x86-64-v4`. A binary started on a CPU
//! without the instructions it was built for would die of SIGILL somewhere in
//! a kernel; [`check`] turns that into an error, and the `kettle` binary and
//! the [`Simulator`](crate::Simulator) call it before any kernel runs.

use crate::error::SimError;

/// The widest SIMD instruction set this build's kernels use.
pub fn simd_level() -> &'static str {
    if cfg!(target_feature = "avx512f") {
        "avx512"
    } else if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        "avx2+fma"
    } else if cfg!(target_feature = "avx") {
        "avx"
    } else if cfg!(target_feature = "sse2") {
        "sse2"
    } else if cfg!(target_feature = "neon") {
        "neon"
    } else {
        "scalar"
    }
}

/// Checks that the CPU has every instruction set this build was compiled for.
///
/// # Errors
/// [`SimError::UnsupportedCpu`] naming the first missing feature.
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
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_machine_runs_this_build() {
        // If this fails, the tests would have crashed anyway.
        super::check().unwrap();
        assert!(!super::simd_level().is_empty());
    }
}
