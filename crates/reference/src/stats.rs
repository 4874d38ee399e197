//! Pearson's chi-square goodness-of-fit test for sampled counts.

use std::collections::BTreeMap;

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The p-value of Pearson's chi-square test that `observed` counts (summing to
/// `shots`) were drawn from the `expected` probabilities.
///
/// Outcomes whose expected count is below 5 are pooled into one bin; if that
/// bin's expected count is itself below 5 it is merged into the smallest other
/// bin. Degrees of freedom are bins − 1; with fewer than two bins there is
/// nothing to test and the result is 1. An outcome observed at least once but
/// with zero (or absent) expected probability gives 0: it cannot happen.
///
/// # Panics
/// If the observed counts do not sum to `shots`, or `shots` is 0.
pub fn chi_square_p_value(
    observed: &BTreeMap<String, u64>,
    expected: &BTreeMap<String, f64>,
    shots: u64,
) -> f64 {
    assert!(shots > 0, "chi-square test of zero shots");
    assert_eq!(
        observed.values().sum::<u64>(),
        shots,
        "observed counts do not sum to shots"
    );
    let impossible = observed
        .iter()
        .any(|(key, &n)| n > 0 && expected.get(key).is_none_or(|&p| p <= 0.0));
    if impossible {
        return 0.0;
    }
    // (expected count, observed count) per bin.
    let mut bins: Vec<(f64, f64)> = Vec::new();
    let mut pool = (0.0, 0.0);
    for (key, &p) in expected {
        let e = p * shots as f64;
        let o = observed.get(key).copied().unwrap_or(0) as f64;
        if e < 5.0 {
            pool.0 += e;
            pool.1 += o;
        } else {
            bins.push((e, o));
        }
    }
    if pool.0 > 0.0 {
        let smallest = bins.iter_mut().min_by(|a, b| a.0.total_cmp(&b.0));
        match smallest {
            Some(bin) if pool.0 < 5.0 => {
                bin.0 += pool.0;
                bin.1 += pool.1;
            }
            _ => bins.push(pool),
        }
    }
    if bins.len() < 2 {
        return 1.0;
    }
    let statistic: f64 = bins.iter().map(|(e, o)| (o - e) * (o - e) / e).sum();
    let dist = ChiSquared::new((bins.len() - 1) as f64).expect("positive degrees of freedom");
    dist.sf(statistic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|&(k, n)| (k.to_string(), n)).collect()
    }

    fn probs(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|&(k, p)| (k.to_string(), p)).collect()
    }

    #[test]
    fn fair_coin() {
        let coin = probs(&[("0", 0.5), ("1", 0.5)]);
        let p = chi_square_p_value(&counts(&[("0", 5000), ("1", 5000)]), &coin, 10_000);
        assert!((p - 1.0).abs() < 1e-12, "{p}");
        let p = chi_square_p_value(&counts(&[("0", 7000), ("1", 3000)]), &coin, 10_000);
        assert!(p < 1e-100, "{p}");
        // 5100/4900: statistic 4, one degree of freedom, p ≈ 0.0455.
        let p = chi_square_p_value(&counts(&[("0", 5100), ("1", 4900)]), &coin, 10_000);
        assert!((p - 0.0455).abs() < 1e-3, "{p}");
    }

    #[test]
    fn impossible_outcome_and_pooling() {
        let coin = probs(&[("0", 0.5), ("1", 0.5)]);
        assert_eq!(
            chi_square_p_value(&counts(&[("0", 9), ("11", 1)]), &coin, 10),
            0.0
        );
        let zero = probs(&[("0", 1.0), ("1", 0.0)]);
        assert_eq!(
            chi_square_p_value(&counts(&[("0", 9), ("1", 1)]), &zero, 10),
            0.0
        );
        assert_eq!(chi_square_p_value(&counts(&[("0", 10)]), &zero, 10), 1.0);
        // Rare outcomes pool; a fair sample of a skewed die passes.
        let die = probs(&[("a", 0.9), ("b", 0.0999), ("c", 0.0001)]);
        let p = chi_square_p_value(&counts(&[("a", 900), ("b", 100)]), &die, 1000);
        assert!(p > 0.5, "{p}");
    }

    #[test]
    fn samples_from_the_distribution_pass() {
        let dist = probs(&[
            ("00", 0.4),
            ("01", 0.3),
            ("10", 0.2),
            ("11", 0.099),
            ("x", 0.001),
        ]);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let shots = 20_000;
        let mut observed = BTreeMap::new();
        for _ in 0..shots {
            let mut u: f64 = rng.random();
            let key = dist
                .iter()
                .find(|&(_, &p)| {
                    u -= p;
                    u < 0.0
                })
                .map_or("x", |(k, _)| k.as_str());
            *observed.entry(key.to_string()).or_insert(0) += 1;
        }
        let p = chi_square_p_value(&observed, &dist, shots);
        assert!(p > 1e-3, "{p}");
    }
}
