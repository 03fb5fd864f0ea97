//! A peer's accuracy-versus-params curve (another tool's measured points, such as Torch-Pruning's
//! on the same model and files), to hold our rounds against: `compare --peer FILE`.
//!
//! The file is CSV: lines starting with `#` are comments, then the header
//! `params_reduction,test_change` and one point per line, the test-accuracy change in points
//! from the peer's own baseline (negative: a loss). The peer's baseline itself, (1×, 0), is
//! implied.

use anyhow::{bail, Context, Result};
use std::path::Path;

pub const HEADER: &str = "params_reduction,test_change";

#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// The file's stem, as the plot's legend names it.
    pub name: String,
    /// (params reduction, test change in points), by increasing reduction, (1, 0) first.
    pub points: Vec<(f64, f64)>,
}

impl Peer {
    pub fn load(path: &Path) -> Result<Peer> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the peer curve {}", path.display()))?;
        let name = path.file_stem().map_or("peer".into(), |s| s.to_string_lossy().into_owned());
        Peer::parse(&name, &text).with_context(|| format!("peer curve {}", path.display()))
    }

    pub fn parse(name: &str, text: &str) -> Result<Peer> {
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        match lines.next() {
            Some((_, l)) if l.trim() == HEADER => {}
            Some((i, l)) => bail!("line {}: expected the header '{HEADER}', found '{}'", i + 1, l.trim()),
            None => bail!("no header '{HEADER}' and no points"),
        }
        let mut points = vec![(1.0, 0.0)];
        for (i, l) in lines {
            let fields: Vec<&str> = l.split(',').map(str::trim).collect();
            let [r, c] = fields[..] else { bail!("line {}: expected two fields (params_reduction,test_change), found '{}'", i + 1, l.trim()) };
            let number = |s: &str, what: &str| -> Result<f64> {
                s.parse::<f64>().ok().filter(|v| v.is_finite()).with_context(|| format!("line {}: {what} '{s}' is not a finite number", i + 1))
            };
            let (r, c) = (number(r, "params_reduction")?, number(c, "test_change")?);
            if r <= 1.0 {
                bail!("line {}: params_reduction {r} must be above 1 (1x, no change, is implied)", i + 1);
            }
            if points.last().is_some_and(|p| p.0 >= r) {
                bail!("line {}: params_reduction {r} does not increase on the line before", i + 1);
            }
            points.push((r, c));
        }
        if points.len() < 2 {
            bail!("no points after the header");
        }
        Ok(Peer { name: name.to_string(), points })
    }

    /// The peer's test change at `reduction`, linear in log(reduction) between its measured
    /// points; `None` beyond its last point (no extrapolation).
    pub fn at(&self, reduction: f64) -> Option<f64> {
        let i = self.points.iter().position(|p| p.0 >= reduction)?;
        if i == 0 {
            return (reduction >= 1.0).then_some(self.points[0].1);
        }
        let ((r0, c0), (r1, c1)) = (self.points[i - 1], self.points[i]);
        let t = (reduction.ln() - r0.ln()) / (r1.ln() - r0.ln());
        Some(c0 + t * (c1 - c0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TORCH: &str = "# Torch-Pruning on vgg16 w0.25\nparams_reduction,test_change\n1.2,-0.85\n2.7,-3.3\n5.7,-5.3\n";

    #[test]
    fn interpolates_in_log_reduction_and_never_extrapolates() {
        let p = Peer::parse("torch", TORCH).unwrap();
        assert_eq!(p.points, vec![(1.0, 0.0), (1.2, -0.85), (2.7, -3.3), (5.7, -5.3)]);
        assert_eq!(p.at(1.0), Some(0.0));
        assert_eq!(p.at(2.7), Some(-3.3));
        // halfway between 2.7 and 5.7 in log space is sqrt(2.7 · 5.7)
        let mid = p.at((2.7f64 * 5.7).sqrt()).unwrap();
        assert!((mid - -4.3).abs() < 1e-9, "{mid}");
        assert_eq!(p.at(6.0), None);
        assert_eq!(p.at(0.5), None);
    }

    #[test]
    fn malformed_curves_are_refused_naming_the_line() {
        let bad = |text: &str, needle: &str| {
            let e = format!("{:#}", Peer::parse("p", text).unwrap_err());
            assert!(e.contains(needle), "{e} (wanted {needle})");
        };
        bad("reduction,change\n2,-1\n", "line 1: expected the header");
        bad("", "no header");
        bad("params_reduction,test_change\n", "no points");
        bad("params_reduction,test_change\n2,-1,3\n", "line 2: expected two fields");
        bad("params_reduction,test_change\n2,x\n", "line 2: test_change 'x'");
        bad("params_reduction,test_change\n2,NaN\n", "not a finite number");
        bad("params_reduction,test_change\n0.5,-1\n", "must be above 1");
        bad("# c\nparams_reduction,test_change\n3,-1\n2,-2\n", "line 4: params_reduction 2 does not increase");
    }
}
