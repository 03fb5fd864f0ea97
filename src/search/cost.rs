//! What an action costs: the params and FLOPs a model keeps after pruning it, estimated from
//! the keep counts alone, and guidance 2 of SPEC.md §5, which rescales rates so an action meets
//! a target exactly.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::target::{Limit, Metric};
use crate::prune::{keep_count, Scheme};
use crate::model::graph::{Architecture, Shape};
use crate::prune::action::{Action, LayerAction};
use crate::prune::count::count;
use crate::prune::topology::topology;

/// One weighted layer of the current model, as the search sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Slot {
    pub name: String,
    pub rows: usize,
    /// Stored (kept) columns.
    pub cols: usize,
    /// Output positions per image: every weight costs 2 FLOPs at each.
    pub positions: usize,
    /// Schemes this layer may use (the classifier: column only; a non-first producer of a
    /// coupled group: none, it follows the group's first producer).
    pub schemes: Vec<Scheme>,
    /// Largest rate allowed under [filter, column] (0 where not allowed): the first layer's
    /// cap, counted against the dense layer; elsewhere one group must remain.
    pub caps: [f32; 2],
    /// The channel spaces (see `prune::topology`) it reads and writes.
    #[serde(default)]
    pub input: usize,
    #[serde(default)]
    pub output: usize,
    /// Batch norms on its output channels, counted with the space's first producer.
    #[serde(default)]
    pub norms: usize,
}

impl Slot {
    pub fn cap(&self, scheme: Scheme) -> f32 {
        self.caps[scheme as usize]
    }
}

/// A search state: one (scheme, rate) per slot.
pub type Plan = Vec<(Scheme, f32)>;

/// The weighted layers of `arch`, in order, under the allowed `schemes`. `dense` is the model
/// the run started from: the first layer's cap limits what is removed from it over all rounds.
/// A coupled group (producers of one residual sum) is pruned through its first producer.
pub fn slots(arch: &Architecture, dense: &Architecture, schemes: &[Scheme], first_layer_max_rate: f32) -> Result<Vec<Slot>> {
    let t = topology(arch)?;
    let first_dense = topology(dense)?.nodes.into_iter().next();
    let c = count(arch)?;
    let mut out = Vec::new();
    let weighted = c.layers.iter().filter(|l| l.kind != "batch_norm");
    for (i, (n, lc)) in t.nodes.iter().zip(weighted).enumerate() {
        let positions = match lc.output {
            Shape::Chw(_, h, w) => h * w,
            Shape::Flat(_) => 1,
        };
        let space = &t.spaces[n.output];
        let leader = space.producers[0] == i;
        let allowed: Vec<Scheme> = if !leader {
            Vec::new()
        } else {
            schemes.iter().copied().filter(|&s| !(space.fixed && s == Scheme::Filter)).collect()
        };
        let mut caps = [0.0f32; 2];
        for &s in &allowed {
            let (groups, dense_groups) = match (s, &first_dense) {
                (Scheme::Filter, Some(d)) => (n.rows, d.rows),
                (Scheme::Column, Some(d)) => (n.cols(), d.cols()),
                (_, None) => (1, 1),
            };
            let one_left = 1.0 - 1.0 / groups as f32;
            caps[s as usize] = if i == 0 { (1.0 - (1.0 - first_layer_max_rate) * dense_groups as f32 / groups as f32).clamp(0.0, one_left) } else { one_left };
        }
        let norms = if leader { space.norms.len() } else { 0 };
        out.push(Slot { name: n.name.clone(), rows: n.rows, cols: n.cols(), positions, schemes: allowed, caps, input: n.input, output: n.output, norms });
    }
    Ok(out)
}

/// Params and FLOPs of the model after `plan`: a filter rate keeps that share of its space's
/// channels, which shrinks every producer of the space (rows, biases, batch norms) and every
/// consumer (its input columns, in proportion); kept columns shrink the layer itself.
pub fn estimate(slots: &[Slot], plan: &Plan) -> (f64, f64) {
    let spaces = slots.iter().map(|s| s.input.max(s.output) + 1).max().unwrap_or(0);
    let mut kept = vec![1.0f64; spaces];
    for (s, &(scheme, rate)) in slots.iter().zip(plan) {
        if scheme == Scheme::Filter && !s.schemes.is_empty() {
            kept[s.output] = keep_count(s.rows, rate.min(s.cap(scheme))) as f64 / s.rows as f64;
        }
    }
    let (mut params, mut flops) = (0.0, 0.0);
    for (s, &(scheme, rate)) in slots.iter().zip(plan) {
        let rows = s.rows as f64 * kept[s.output];
        let own = if scheme == Scheme::Column && !s.schemes.is_empty() { keep_count(s.cols, rate.min(s.cap(scheme))) } else { s.cols };
        let cols = own as f64 * kept[s.input];
        params += rows * cols + rows + 2.0 * s.norms as f64 * rows;
        flops += 2.0 * rows * cols * s.positions as f64;
    }
    (params, flops)
}

pub fn metric_of(slots: &[Slot], plan: &Plan, metric: Metric) -> f64 {
    let (p, f) = estimate(slots, plan);
    match metric {
        Metric::Params => p,
        Metric::Flops => f,
    }
}

/// Whether the model after `plan` keeps at most each limit's share of its metric.
pub fn fits(slots: &[Slot], plan: &Plan, limits: &[Limit]) -> bool {
    let (p, f) = estimate(slots, plan);
    limits.iter().all(|&(m, most)| match m {
        Metric::Params => p <= most,
        Metric::Flops => f <= most,
    })
}

/// Guidance 2: moves every rate along one monotone path — first scaling the rates together
/// (in proportion, each stopping at its cap), then raising each toward its cap — and bisects for the smallest
/// step whose model keeps at most every limit (params, FLOPs or both: both only shrink along the
/// path, so the step found is the larger of the two steps each alone needs). The bisection is
/// bounded. Where the plan's schemes cannot meet a limit even at the caps, layers first switch
/// scheme (see `reachable`); a limit that no such switch makes reachable is an error that says
/// how far the caps get.
pub fn rescale(slots: &[Slot], plan: &Plan, limits: &[Limit]) -> Result<Plan> {
    let plan = reachable(slots, plan, limits);
    let mut base: Plan = plan.iter().zip(slots).map(|(&(s, r), slot)| (s, r.clamp(0.0, slot.cap(s)))).collect();
    if base.iter().all(|&(_, r)| r == 0.0) {
        // nothing to scale: start from equal rates
        for (b, slot) in base.iter_mut().zip(slots) {
            b.1 = 0.5f32.min(slot.cap(b.0));
        }
    }
    let top = base.iter().zip(slots).filter(|(b, _)| b.1 > 0.0).map(|(b, s)| s.cap(b.0) / b.1).fold(0.0f32, f32::max);
    let at = |t: f64| -> Plan {
        base.iter()
            .zip(slots)
            .map(|(&(s, r), slot)| {
                let cap = slot.cap(s);
                let scaled = (r * top * t.min(1.0) as f32).min(cap);
                let raised = if t > 1.0 { scaled + (t - 1.0) as f32 * (cap - scaled) } else { scaled };
                (s, raised.clamp(0.0, cap))
            })
            .collect()
    };
    let full = at_caps(slots, &base);
    for &(metric, budget) in limits {
        let most = metric_of(slots, &full, metric);
        if most > budget {
            bail!(
                "cannot keep only {budget:.0} {}: pruning every layer as far as allowed (the first layer to {}, one filter or column left elsewhere, each layer under the scheme that gets furthest) still keeps {most:.0}",
                metric.name(),
                slots.first().map_or(0.0, |s| s.caps[0].max(s.caps[1]))
            );
        }
    }
    if fits(slots, &at(0.0), limits) {
        return Ok(at(0.0));
    }
    let (mut lo, mut hi) = (0.0f64, 2.0f64);
    for _ in 0..50 {
        let mid = 0.5 * (lo + hi);
        if fits(slots, &at(mid), limits) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(at(hi))
}

/// `plan`, or, when even every layer at its cap under the plan's schemes keeps more than a
/// limit, the plan with layers switched to their other scheme, one at a time, each time the
/// switch that brings the capped model closest to the limits, until it can meet them or no switch
/// helps. Why: a coupled group pruned by columns keeps its other producers whole (they follow
/// the group's filters), so on a residual network a round's target can need the group's filters.
fn reachable(slots: &[Slot], plan: &Plan, limits: &[Limit]) -> Plan {
    // how far the capped model is above the limits (sum of log ratios; 0 when it meets them)
    let excess = |p: &Plan| -> f64 {
        let (params, flops) = estimate(slots, &at_caps(slots, p));
        limits.iter().map(|&(m, most)| (if m == Metric::Params { params } else { flops } / most).ln().max(0.0)).sum()
    };
    let switched = |p: &Plan, i: usize| -> Plan {
        let mut p = p.clone();
        let to = if p[i].0 == Scheme::Filter { Scheme::Column } else { Scheme::Filter };
        p[i] = (to, p[i].1.min(slots[i].cap(to)));
        p
    };
    let mut plan = plan.clone();
    let mut e = excess(&plan);
    while e > 0.0 {
        let best = (0..slots.len()).filter(|&i| slots[i].schemes.len() > 1).map(|i| (excess(&switched(&plan, i)), i)).min_by(|a, b| a.0.total_cmp(&b.0));
        match best {
            Some((after, i)) if after < e => {
                plan = switched(&plan, i);
                e = after;
            }
            _ => break,
        }
    }
    plan
}

/// `plan`'s schemes with every rate at its cap: the most each scheme can prune.
fn at_caps(slots: &[Slot], plan: &Plan) -> Plan {
    plan.iter().zip(slots).map(|(&(s, _), slot)| (s, slot.cap(s))).collect()
}

/// The plan as an action file names it (every slot listed, rate 0 included).
pub fn to_action(slots: &[Slot], plan: &Plan) -> Action {
    Action { layers: slots.iter().zip(plan).map(|(s, &(scheme, rate))| LayerAction { layer: s.name.clone(), scheme, rate }).collect() }
}

/// What a plan prunes, in kept groups: equal keys prune the same groups, so the quick
/// evaluation caches by it.
pub fn key(slots: &[Slot], plan: &Plan) -> String {
    slots
        .iter()
        .zip(plan)
        .map(|(s, &(scheme, rate))| match scheme {
            Scheme::Filter => format!("{}:f{}", s.name, keep_count(s.rows, rate)),
            Scheme::Column => format!("{}:c{}", s.name, keep_count(s.cols, rate)),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::zoo;

    fn lenet() -> Vec<Slot> {
        let arch = zoo::build("lenet5", [1, 28, 28], 10).unwrap();
        slots(&arch, &arch, &[Scheme::Filter, Scheme::Column], 0.5).unwrap()
    }

    #[test]
    fn zero_rates_cost_what_count_says() {
        let arch = zoo::build("lenet5", [1, 28, 28], 10).unwrap();
        let s = lenet();
        let c = count(&arch).unwrap();
        let (p, f) = estimate(&s, &vec![(Scheme::Column, 0.0); s.len()]);
        assert_eq!((p as u64, f as u64), (c.params, c.flops));
        assert_eq!(s.last().unwrap().schemes, vec![Scheme::Column], "the classifier keeps its rows");
        assert_eq!(s[0].caps, [0.5, 0.5]);
    }

    #[test]
    fn filters_shrink_the_consumer() {
        let s = lenet();
        let mut plan = vec![(Scheme::Column, 0.0); s.len()];
        plan[2] = (Scheme::Filter, 0.5); // fc1: 250 of 500 units kept, so fc2 reads 250 inputs
        let (p, _) = estimate(&s, &plan);
        let full = estimate(&s, &vec![(Scheme::Column, 0.0); s.len()]).0;
        assert_eq!(full - p, (250 * 800 + 250 + 10 * 250) as f64);
    }

    #[test]
    fn rescale_meets_the_budget_and_is_tight() {
        let s = lenet();
        let dense = estimate(&s, &vec![(Scheme::Column, 0.0); s.len()]).0;
        let plan = vec![(Scheme::Filter, 0.2), (Scheme::Column, 0.4), (Scheme::Filter, 0.9), (Scheme::Column, 0.1)];
        for factor in [2.0, 10.0, 60.0] {
            let out = rescale(&s, &plan, &[(Metric::Params, dense / factor)]).unwrap();
            let got = metric_of(&s, &out, Metric::Params);
            assert!(got <= dense / factor, "{factor}x: {got}");
            assert!(got >= 0.9 * dense / factor, "{factor}x: {got} is far below the budget");
            assert!(out.iter().zip(&s).all(|(&(sc, r), sl)| (0.0..=sl.cap(sc)).contains(&r)));
        }
        let err = rescale(&s, &plan, &[(Metric::Params, dense / 1e6)]).unwrap_err().to_string();
        assert!(err.contains("cannot keep only"), "{err}");
    }

    #[test]
    fn rescale_meets_two_limits_at_the_step_of_the_binding_one() {
        let s = lenet();
        let (dp, df) = estimate(&s, &vec![(Scheme::Column, 0.0); s.len()]);
        let plan = vec![(Scheme::Filter, 0.2), (Scheme::Column, 0.4), (Scheme::Filter, 0.9), (Scheme::Column, 0.1)];
        let rates = |p: &Plan| p.iter().map(|x| x.1 as f64).sum::<f64>();
        let mut binding = Vec::new();
        for (pf, ff) in [(10.0, 1.5), (2.0, 6.0), (30.0, 8.0), (60.0, 12.0)] {
            let limits = [(Metric::Params, dp / pf), (Metric::Flops, df / ff)];
            let out = rescale(&s, &plan, &limits).unwrap();
            let (p, f) = estimate(&s, &out);
            assert!(p <= dp / pf && f <= df / ff, "{pf}x/{ff}x: {p} params, {f} FLOPs");
            assert!(fits(&s, &out, &limits));
            // both metrics only shrink along the path, so the joint step is the later of the two
            let alone_p = rescale(&s, &plan, &limits[..1]).unwrap();
            let alone_f = rescale(&s, &plan, &limits[1..]).unwrap();
            let (later, which) = if rates(&alone_p) >= rates(&alone_f) { (alone_p, "params") } else { (alone_f, "flops") };
            assert_eq!(out, later, "{pf}x/{ff}x");
            binding.push(which);
        }
        assert!(binding.contains(&"params") && binding.contains(&"flops"), "each metric should bind once: {binding:?}");
        let err = rescale(&s, &plan, &[(Metric::Params, dp / 2.0), (Metric::Flops, df / 1e6)]).unwrap_err().to_string();
        assert!(err.contains("cannot keep only") && err.contains("flops"), "{err}");
    }

    #[test]
    fn a_target_out_of_reach_of_column_pruned_groups_switches_them_to_filters() {
        // resnet18's coupled groups pruned by columns keep their other producers whole
        let arch = zoo::build_scaled("resnet18", 0.25, [3, 32, 32], 10).unwrap();
        let s = slots(&arch, &arch, &[Scheme::Filter, Scheme::Column], 0.5).unwrap();
        let columns: Plan = s.iter().map(|sl| (if sl.schemes.contains(&Scheme::Column) { Scheme::Column } else { Scheme::Filter }, 0.5f32.min(sl.cap(Scheme::Column)))).collect();
        let most_by_columns = metric_of(&s, &at_caps(&s, &columns), Metric::Params);
        let dense = metric_of(&s, &vec![(Scheme::Column, 0.0); s.len()], Metric::Params);
        assert!(most_by_columns > dense / 10.0, "the premise: columns alone cannot reach 10x ({most_by_columns} of {dense})");
        let limit = [(Metric::Params, dense / 10.0)];
        let out = rescale(&s, &columns, &limit).unwrap();
        assert!(fits(&s, &out, &limit));
        assert!(metric_of(&s, &out, Metric::Params) >= 0.9 * dense / 10.0, "rescaled, not pruned to the caps");
        let switched: Vec<&str> = s.iter().zip(columns.iter().zip(&out)).filter(|(_, (a, b))| a.0 != b.0).map(|(sl, _)| sl.name.as_str()).collect();
        assert!(!switched.is_empty() && switched.len() < s.len() / 2, "a few layers switch, not all: {switched:?}");
        // a reachable limit keeps the plan's schemes
        let easy = rescale(&s, &columns, &[(Metric::Params, dense / 2.0)]).unwrap();
        assert!(easy.iter().zip(&columns).all(|(a, b)| a.0 == b.0));
        // and what no scheme reaches is still an error
        let err = rescale(&s, &columns, &[(Metric::Params, 10.0)]).unwrap_err().to_string();
        assert!(err.contains("cannot keep only 10 params") && err.contains("the scheme that gets furthest"), "{err}");
    }
}
