//! The compression target (SPEC.md §1): a reduction factor on params, on FLOPs, or on both at
//! once (`params:100x,flops:20x`: both must be met).

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

    /// As a table heading or sentence names it.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Params => "params",
            Metric::Flops => "FLOPs",
        }
    }
}

/// One reduction goal: `factor` = dense ÷ pruned on `metric`, at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    pub metric: Metric,
    pub factor: f64,
}

/// At most this much of `metric` may remain: a goal turned into an absolute bound on a model.
pub type Limit = (Metric, f64);

/// One goal per metric, one or two of them, in the order given; every one must be met. The
/// first is the run's primary metric (the plots' x axis, `round_target` in the report).
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    goals: Vec<Goal>,
}

impl Target {
    pub fn single(metric: Metric, factor: f64) -> Target {
        Target { goals: vec![Goal { metric, factor }] }
    }

    /// Goals with distinct metrics, at least one; each factor at least 1 (checked).
    pub fn new(goals: Vec<Goal>) -> Result<Target> {
        if goals.is_empty() {
            bail!("a target needs at least one goal, e.g. params:30x");
        }
        for (i, g) in goals.iter().enumerate() {
            if !g.factor.is_finite() || g.factor < 1.0 {
                bail!("a reduction factor must be at least 1x (dense ÷ pruned), found {} for {}", g.factor, g.metric.name());
            }
            if goals[..i].iter().any(|h| h.metric == g.metric) {
                bail!("{} is given twice: give each metric once, e.g. params:100x,flops:20x", g.metric.name());
            }
        }
        Ok(Target { goals })
    }

    /// Parses `params:30x`, `flops:8x` (the `x` is optional), or both joined by a comma:
    /// `params:100x,flops:20x`.
    pub fn parse(s: &str) -> Result<Target> {
        let mut goals = Vec::new();
        for part in s.split(',').map(str::trim) {
            if part.is_empty() {
                bail!("--target '{s}': an empty part; expected METRIC:FACTORx[,METRIC:FACTORx], e.g. params:100x,flops:20x");
            }
            let Some((metric, factor)) = part.split_once(':') else {
                bail!("--target '{s}': expected METRIC:FACTORx, e.g. params:30x or flops:8x (or both: params:100x,flops:20x)");
            };
            let metric = match metric.trim() {
                "params" => Metric::Params,
                "flops" => Metric::Flops,
                other => bail!("--target '{s}': unknown metric '{other}' (choose params or flops)"),
            };
            let factor = factor.trim();
            let digits = factor.strip_suffix('x').unwrap_or(factor);
            let Ok(value) = digits.parse::<f64>() else {
                bail!("--target '{s}': '{factor}' is not a reduction factor such as 30x");
            };
            if !value.is_finite() || value < 1.0 {
                bail!("--target '{s}': a reduction factor must be at least 1x (dense ÷ pruned), found {value}");
            }
            if goals.iter().any(|g: &Goal| g.metric == metric) {
                bail!("--target '{s}': {} is given twice; give each metric once, e.g. params:100x,flops:20x", metric.name());
            }
            goals.push(Goal { metric, factor: value });
        }
        Target::new(goals)
    }

    pub fn goals(&self) -> &[Goal] {
        &self.goals
    }

    pub fn goals_mut(&mut self) -> &mut [Goal] {
        &mut self.goals
    }

    /// The first goal.
    pub fn primary(&self) -> Goal {
        self.goals[0]
    }

    /// The goal on `metric`, if the target has one.
    pub fn goal(&self, metric: Metric) -> Option<Goal> {
        self.goals.iter().copied().find(|g| g.metric == metric)
    }

    /// dense ÷ `now` on each goal's metric, in goal order.
    pub fn reductions(&self, dense: &Count, now: &Count) -> Vec<f64> {
        self.goals.iter().map(|g| g.metric.of(dense) as f64 / g.metric.of(now) as f64).collect()
    }

    /// Each goal as an absolute bound on a model whose dense form is `dense`.
    pub fn limits(&self, dense: &Count) -> Vec<Limit> {
        self.goals.iter().map(|g| (g.metric, g.metric.of(dense) as f64 / g.factor)).collect()
    }

    /// `reductions` (in goal order) meet every goal.
    pub fn met_by(&self, reductions: &[f64]) -> bool {
        self.goals.iter().zip(reductions).all(|(g, &r)| meets(r, g.factor))
    }

    /// Reductions in words: `8.2×` for one goal, `60.1× params, 21.0× FLOPs` for two.
    pub fn describe(&self, reductions: &[f64], decimals: usize) -> String {
        if self.goals.len() == 1 {
            return format!("{:.*}×", decimals, reductions[0]);
        }
        self.goals.iter().zip(reductions).map(|(g, r)| format!("{:.*}× {}", decimals, r, g.metric.label())).collect::<Vec<_>>().join(", ")
    }
}

/// `reduction` reaches `factor` (up to rounding).
pub fn meets(reduction: f64, factor: f64) -> bool {
    reduction >= factor * (1.0 - 1e-9)
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}x", self.metric.name(), self.factor)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.goals.iter().map(Goal::to_string).collect();
        write!(f, "{}", parts.join(","))
    }
}

/// config.json keeps a one-goal target as it always has (`{"metric", "factor"}`), so runs
/// started by earlier versions resume, and a two-goal one as a list of such goals.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    One(Goal),
    Many(Vec<Goal>),
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.goals.as_slice() {
            [one] => Stored::One(*one).serialize(s),
            many => Stored::Many(many.to_vec()).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Target, D::Error> {
        let goals = match Stored::deserialize(d)? {
            Stored::One(g) => vec![g],
            Stored::Many(g) => g,
        };
        Target::new(goals).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(metric: Metric, factor: f64) -> Goal {
        Goal { metric, factor }
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(Target::parse("params:30x").unwrap(), Target::single(Metric::Params, 30.0));
        assert_eq!(Target::parse("flops:8").unwrap(), Target::single(Metric::Flops, 8.0));
        let both = Target::parse("params:100x, flops:20x").unwrap();
        assert_eq!(both.goals(), &[goal(Metric::Params, 100.0), goal(Metric::Flops, 20.0)]);
        assert_eq!(both.to_string(), "params:100x,flops:20x");
        assert_eq!(Target::parse("flops:20x,params:100x").unwrap().primary(), goal(Metric::Flops, 20.0), "the order given is kept");
        for (bad, says) in [
            ("params:0.5x", "at least 1x"),
            ("weights:3x", "unknown metric 'weights'"),
            ("30x", "expected METRIC:FACTORx"),
            ("params:abcx", "'abcx' is not a reduction factor"),
            ("params:NaNx", "at least 1x"),
            ("params:10x,params:20x", "params is given twice"),
            ("params:10x,", "an empty part"),
            (",flops:3x", "an empty part"),
            ("params:10x,flops:0x", "at least 1x"),
            ("params:10x;flops:3x", "'10x;flops:3x' is not a reduction factor"),
            ("params:10x,flops", "expected METRIC:FACTORx"),
            ("", "an empty part"),
        ] {
            let err = Target::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(says) && err.contains(&format!("'{bad}'")), "{bad}: {err}");
        }
    }

    #[test]
    fn one_goal_is_stored_as_before_and_both_forms_read_back() {
        let one = Target::single(Metric::Params, 8.0);
        assert_eq!(serde_json::to_string(&one).unwrap(), r#"{"metric":"params","factor":8.0}"#);
        let both = Target::parse("params:100x,flops:20.5x").unwrap();
        for t in [one, both] {
            let back: Target = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
            assert_eq!(back, t);
        }
        assert!(serde_json::from_str::<Target>(r#"[{"metric":"params","factor":2.0},{"metric":"params","factor":3.0}]"#).is_err());
        assert!(serde_json::from_str::<Target>("[]").is_err());
    }

    #[test]
    fn both_goals_must_be_met() {
        let t = Target::parse("params:100x,flops:20x").unwrap();
        assert!(!t.met_by(&[120.0, 19.0]));
        assert!(!t.met_by(&[99.0, 25.0]));
        assert!(t.met_by(&[100.0, 20.0 * (1.0 - 1e-12)]));
        assert_eq!(t.describe(&[120.04, 19.0], 1), "120.0× params, 19.0× FLOPs");
        assert_eq!(Target::single(Metric::Flops, 2.0).describe(&[7.8912], 2), "7.89×");
        let dense = Count { params: 1000, flops: 400, layers: Vec::new() };
        let now = Count { params: 100, flops: 100, layers: Vec::new() };
        assert_eq!(t.reductions(&dense, &now), vec![10.0, 4.0]);
        assert_eq!(t.limits(&dense), vec![(Metric::Params, 10.0), (Metric::Flops, 20.0)]);
    }
}
