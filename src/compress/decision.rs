//! The budget decision (SPEC.md §2, ours): a round is kept when its validation accuracy is
//! within the budget of the baseline's. Optionally also when the drop is within the budget with
//! a stated confidence, from a paired comparison of the two models image by image. That test
//! only ever adds a condition, so it can reject rounds the plain rule keeps, never the reverse.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The pruned model's validation drop from the baseline, image by image (points).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedDrop {
    pub images: usize,
    /// Images the baseline classifies right and the pruned model wrong.
    pub lost: usize,
    /// Images the baseline classifies wrong and the pruned model right.
    pub gained: usize,
    /// (lost − gained) ÷ images, in percentage points: the drop in validation accuracy.
    pub drop: f64,
    /// Standard error of `drop` (points), from the spread of the per-image differences.
    pub standard_error: f64,
}

impl PairedDrop {
    /// Compares per-image correctness on the same images, in the same order.
    pub fn of(baseline: &[bool], pruned: &[bool]) -> Result<PairedDrop> {
        if baseline.len() != pruned.len() || baseline.is_empty() {
            bail!("a paired comparison needs the same images for both models: {} and {} given", baseline.len(), pruned.len());
        }
        let lost = baseline.iter().zip(pruned).filter(|(b, p)| **b && !**p).count();
        let gained = baseline.iter().zip(pruned).filter(|(b, p)| !**b && **p).count();
        let n = baseline.len() as f64;
        let mean = (lost as f64 - gained as f64) / n;
        // differences are +1 (lost), −1 (gained) or 0: their sum of squares is lost + gained
        let var = if baseline.len() > 1 { ((lost + gained) as f64 - n * mean * mean).max(0.0) / (n - 1.0) } else { 0.0 };
        Ok(PairedDrop { images: baseline.len(), lost, gained, drop: 100.0 * mean, standard_error: 100.0 * (var / n).sqrt() })
    }

    /// The one-sided `confidence` upper bound of the drop (points), by the normal
    /// approximation (McNemar's: only the discordant images count).
    pub fn upper(&self, confidence: f64) -> f64 {
        self.drop + normal_quantile(confidence) * self.standard_error
    }

    /// The drop is within `budget` points: plainly (no confidence), or with its one-sided
    /// `confidence` upper bound.
    pub fn within(&self, budget: f64, confidence: Option<f64>) -> bool {
        match confidence {
            None => self.drop <= budget + 1e-7,
            Some(c) => self.upper(c) <= budget + 1e-7,
        }
    }
}

/// `--budget-confidence`: at least 0.5 (where the bound is the drop itself), below 1.
pub fn validate_confidence(c: Option<f64>) -> Result<()> {
    if let Some(c) = c {
        if !(0.5..1.0).contains(&c) {
            bail!("--budget-confidence must be in [0.5, 1) (e.g. 0.9: accept a round only if its drop is within the budget with 90% confidence), found {c}");
        }
    }
    Ok(())
}

/// The standard normal quantile Φ⁻¹(p), 0 < p < 1 (P. J. Acklam's rational approximation,
/// relative error below 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
    const B: [f64; 5] = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let tail = |q: f64| (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5]) / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0);
    const LOW: f64 = 0.02425;
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_match_the_tables() {
        for (p, z) in [(0.5, 0.0), (0.8, 0.8416212), (0.9, 1.2815516), (0.95, 1.6448536), (0.975, 1.9599640), (0.99, 2.3263479), (0.999, 3.0902323), (0.01, -2.3263479)] {
            assert!((normal_quantile(p) - z).abs() < 1e-6, "Φ⁻¹({p}) = {} (want {z})", normal_quantile(p));
        }
    }

    fn images(lost: usize, gained: usize, same_right: usize, same_wrong: usize) -> (Vec<bool>, Vec<bool>) {
        let mut b = Vec::new();
        let mut p = Vec::new();
        for (n, x, y) in [(lost, true, false), (gained, false, true), (same_right, true, true), (same_wrong, false, false)] {
            b.extend(std::iter::repeat_n(x, n));
            p.extend(std::iter::repeat_n(y, n));
        }
        (b, p)
    }

    #[test]
    fn the_paired_drop_counts_discordant_images() {
        // 6,000 images, 30 lost, 18 gained: a 0.2-point drop
        let (b, p) = images(30, 18, 5900, 52);
        let d = PairedDrop::of(&b, &p).unwrap();
        assert_eq!((d.images, d.lost, d.gained), (6000, 30, 18));
        assert!((d.drop - 0.2).abs() < 1e-12);
        // sd of the differences: sqrt((48 − 6000·0.002²)/5999), then ÷ √6000, in points
        let se = 100.0 * ((48.0 - 6000.0 * 0.002f64.powi(2)) / 5999.0 / 6000.0).sqrt();
        assert!((d.standard_error - se).abs() < 1e-12, "{} vs {se}", d.standard_error);
        assert!((d.upper(0.95) - (0.2 + 1.6448536 * se)).abs() < 1e-6);
        assert!(PairedDrop::of(&b, &p[1..]).is_err());
        assert!(PairedDrop::of(&[], &[]).is_err());
    }

    #[test]
    fn the_confident_decision_is_never_looser_than_the_plain_one() {
        // exhaustive over small discordant counts on 600 images, budgets 0 to 2 points
        for lost in 0..20 {
            for gained in 0..20 {
                let (b, p) = images(lost, gained, 560 - lost - gained, 40);
                let d = PairedDrop::of(&b, &p).unwrap();
                for budget in [0.0, 0.2, 0.5, 1.0, 2.0] {
                    let plain = d.within(budget, None);
                    assert_eq!(plain, d.within(budget, Some(0.5)), "at confidence 0.5 the bound is the drop");
                    for c in [0.8, 0.9, 0.95, 0.99] {
                        assert!(!d.within(budget, Some(c)) || plain, "lost {lost}, gained {gained}, budget {budget}, confidence {c}");
                    }
                }
            }
        }
        // a drop exactly at the budget is within it; a drop with no discordance is certain
        let (b, p) = images(12, 0, 5900, 88);
        let d = PairedDrop::of(&b, &p).unwrap();
        assert!(d.within(0.2, None) && !d.within(0.2, Some(0.9)));
        let (b, p) = images(0, 0, 5900, 100);
        assert!(PairedDrop::of(&b, &p).unwrap().within(0.0, Some(0.99)));
    }

    #[test]
    fn confidence_outside_half_to_one_is_refused() {
        assert!(validate_confidence(None).is_ok() && validate_confidence(Some(0.5)).is_ok() && validate_confidence(Some(0.95)).is_ok());
        for bad in [0.0, 0.4, 1.0, 95.0, f64::NAN] {
            let e = validate_confidence(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("--budget-confidence"), "{e}");
        }
    }
}
