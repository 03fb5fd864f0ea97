//! The compression target (SPEC.md §1): a reduction factor on params or on FLOPs.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::prune::count::Count;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Params,
    Flops,
}

impl Metric {
    pub fn of(self, c: &Count) -> u64 {
        match self {
            Metric::Params => c.params,
            Metric::Flops => c.flops,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Params => "params",
            Metric::Flops => "flops",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub metric: Metric,
    /// dense ÷ pruned, at least 1.
    pub factor: f64,
}

impl Target {
    /// Parses `params:30x`, `flops:8x` (the `x` is optional).
    pub fn parse(s: &str) -> Result<Target> {
        let Some((metric, factor)) = s.split_once(':') else {
            bail!("--target '{s}': expected METRIC:FACTORx, e.g. params:30x or flops:8x");
        };
        let metric = match metric {
            "params" => Metric::Params,
            "flops" => Metric::Flops,
            other => bail!("--target '{s}': unknown metric '{other}' (choose params or flops)"),
        };
        let digits = factor.strip_suffix('x').unwrap_or(factor);
        let Ok(factor) = digits.parse::<f64>() else {
            bail!("--target '{s}': '{factor}' is not a reduction factor such as 30x");
        };
        if !factor.is_finite() || factor < 1.0 {
            bail!("--target '{s}': a reduction factor must be at least 1x (dense ÷ pruned), found {factor}");
        }
        Ok(Target { metric, factor })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}x", self.metric.name(), self.factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(Target::parse("params:30x").unwrap(), Target { metric: Metric::Params, factor: 30.0 });
        assert_eq!(Target::parse("flops:8").unwrap(), Target { metric: Metric::Flops, factor: 8.0 });
        for bad in ["params:0.5x", "weights:3x", "30x", "params:abcx", "params:NaNx"] {
            assert!(Target::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
