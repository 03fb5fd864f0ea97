//! Simulated annealing over actions (SPEC.md §5): sample a neighbour, apply the guidance,
//! evaluate it quickly, accept by the Metropolis rule in accuracy points, cool, stop.

use anyhow::{bail, Result};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::cost::{estimate, key, rescale, to_action, Plan, Slot};
use super::guide::{sort_by_size, History};
use super::quick::QuickEval;
use super::target::Limit;
use crate::prune::Scheme;
use crate::prune::action::Action;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Guidance 1–3.
    Guided,
    /// Random perturbations, rescaled to the target (guidance 2) and nothing else.
    Unguided,
    /// One rate for every layer, no search.
    Uniform,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode> {
        Ok(match s {
            "guided" => Mode::Guided,
            "unguided" => Mode::Unguided,
            "uniform" => Mode::Uniform,
            other => bail!("unknown --search '{other}': choose guided, unguided or uniform"),
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchConfig {
    pub mode: Mode,
    pub t0: f64,
    pub cooling: f64,
    pub t_stop: f64,
    pub max_iterations: usize,
    /// Half-width m of the rate perturbation U(−m, m)·T/T0.
    pub perturbation: f32,
    pub p_flip: f32,
    pub quick_retrain_steps: usize,
    pub quick_val_images: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            mode: Mode::Guided,
            t0: 2.0,
            cooling: 0.9,
            t_stop: 0.1,
            max_iterations: 30,
            perturbation: 0.35,
            p_flip: 0.2,
            quick_retrain_steps: 100,
            quick_val_images: 2000,
        }
    }
}

impl SearchConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.t0 > 0.0 && self.t_stop > 0.0 && self.t_stop.is_finite()) {
            bail!("--t0 and --t-stop must be positive");
        }
        if !(self.cooling > 0.0 && self.cooling < 1.0) {
            bail!("--cooling must be in (0, 1), found {}", self.cooling);
        }
        if !(0.0..=1.0).contains(&self.p_flip) || !(0.0..=1.0).contains(&self.perturbation) {
            bail!("--p-flip and --perturbation must be in [0, 1]");
        }
        if self.quick_val_images == 0 {
            bail!("--quick-val-images must be at least 1");
        }
        Ok(())
    }
}

/// One evaluated candidate (a row of search.csv).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Candidate {
    pub iteration: usize,
    pub temperature: f64,
    pub action: Action,
    /// Estimated params and FLOPs after the action, on the whole model.
    pub params: f64,
    pub flops: f64,
    pub quick_accuracy: f64,
    pub accepted: bool,
    pub cached: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    pub best: Action,
    pub best_quick_accuracy: f64,
    pub candidates: Vec<Candidate>,
    /// Quick evaluations run (cache hits not counted), and how many of them it took to first
    /// reach the best action (the starting state counts as the first).
    #[serde(default)]
    pub evaluations: usize,
    #[serde(default)]
    pub evaluations_to_best: usize,
}

/// What the search asks of an evaluator: a plan's accuracy (0..1) and whether it was cached.
pub trait Evaluate {
    fn accuracy(&mut self, slots: &[Slot], plan: &Plan) -> Result<(f64, bool)>;
}

impl Evaluate for QuickEval<'_> {
    fn accuracy(&mut self, slots: &[Slot], plan: &Plan) -> Result<(f64, bool)> {
        QuickEval::accuracy(self, slots, plan)
    }
}

/// Searches for the action on the current model that keeps at most each of `limits` (params,
/// FLOPs or both) and loses the least quick-evaluated accuracy. `on_candidate` sees each
/// candidate as it is logged.
pub fn anneal(
    slots: &[Slot],
    limits: &[Limit],
    cfg: &SearchConfig,
    seed: u64,
    quick: &mut impl Evaluate,
    mut on_candidate: impl FnMut(&Candidate) -> Result<()>,
) -> Result<Outcome> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let default_scheme = |s: &Slot| if s.schemes.contains(&Scheme::Column) { Scheme::Column } else { Scheme::Filter };
    let start: Plan = slots.iter().map(|s| (default_scheme(s), 0.5f32.min(s.cap(default_scheme(s))))).collect();
    let mut current = rescale(slots, &start, limits)?;
    let mut candidates = Vec::new();
    let mut log = |it: usize, t: f64, plan: &Plan, acc: f64, accepted: bool, cached: bool, all: &mut Vec<Candidate>| -> Result<()> {
        let (params, flops) = estimate(slots, plan);
        let c = Candidate { iteration: it, temperature: t, action: to_action(slots, plan), params, flops, quick_accuracy: acc, accepted, cached };
        on_candidate(&c)?;
        all.push(c);
        Ok(())
    };
    let (acc0, cached0) = quick.accuracy(slots, &current)?;
    let mut current_acc = acc0;
    log(0, cfg.t0, &current, acc0, true, cached0, &mut candidates)?;
    let mut best = (current.clone(), current_acc);
    let mut evaluations = usize::from(!cached0);
    let mut evaluations_to_best = evaluations;
    if cfg.mode == Mode::Uniform {
        return Ok(Outcome { best: to_action(slots, &best.0), best_quick_accuracy: best.1, candidates, evaluations, evaluations_to_best });
    }

    let guided = cfg.mode == Mode::Guided;
    let mut history = History::new(slots.len());
    let mut t = cfg.t0;
    for it in 1..=cfg.max_iterations {
        if t < cfg.t_stop {
            break;
        }
        // a neighbour that prunes differently from the current state (bounded retries)
        let mut cand = current.clone();
        for _ in 0..8 {
            cand = neighbour(slots, &current, t, cfg, guided.then_some(&history), &mut rng);
            if guided {
                sort_by_size(slots, &mut cand, limits);
            }
            cand = rescale(slots, &cand, limits)?;
            if key(slots, &cand) != key(slots, &current) {
                break;
            }
        }
        let (acc, cached) = quick.accuracy(slots, &cand)?;
        evaluations += usize::from(!cached);
        // energy E = −accuracy in points
        let delta = 100.0 * (current_acc - acc);
        let accepted = delta <= 0.0 || rng.gen::<f64>() < (-delta / t).exp();
        log(it, t, &cand, acc, accepted, cached, &mut candidates)?;
        history.record(&current, 100.0 * current_acc, &cand, 100.0 * acc);
        if acc > best.1 {
            best = (cand.clone(), acc);
            evaluations_to_best = evaluations;
        }
        if accepted {
            current = cand;
            current_acc = acc;
        }
        t *= cfg.cooling;
    }
    Ok(Outcome { best: to_action(slots, &best.0), best_quick_accuracy: best.1, candidates, evaluations, evaluations_to_best })
}

/// Action sampling: each rate moves by U(−m, m)·T/T0 (plus the experience bias when guided), and
/// each layer may flip its scheme with probability p_flip·T/T0 (weighted by experience).
fn neighbour(slots: &[Slot], current: &Plan, t: f64, cfg: &SearchConfig, history: Option<&History>, rng: &mut ChaCha8Rng) -> Plan {
    let heat = (t / cfg.t0) as f32;
    let m = cfg.perturbation * heat;
    slots
        .iter()
        .zip(current)
        .enumerate()
        .map(|(i, (s, &(scheme, rate)))| {
            let noise: f32 = if m > 0.0 { rng.gen_range(-m..=m) } else { 0.0 };
            let bias = history.map_or(0.0, |h| h.bias(i, m));
            let mut scheme = scheme;
            if s.schemes.len() > 1 {
                let other = if scheme == Scheme::Filter { Scheme::Column } else { Scheme::Filter };
                let p = history.map_or(cfg.p_flip, |h| h.flip_probability(i, other, cfg.p_flip)) * heat;
                if rng.gen::<f32>() < p {
                    scheme = other;
                }
            }
            (scheme, (rate + noise + bias).clamp(0.0, s.cap(scheme)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::zoo;
    use crate::search::cost::{estimate, metric_of, slots};
    use crate::search::Metric;

    /// A synthetic accuracy landscape on LeNet-5's layers: each layer loses accuracy with the
    /// square of its rate, conv layers far more than the fully connected ones, and fc1 prefers
    /// filter pruning.
    struct Landscape {
        calls: usize,
    }

    impl Evaluate for Landscape {
        fn accuracy(&mut self, slots: &[Slot], plan: &Plan) -> Result<(f64, bool)> {
            self.calls += 1;
            let sens = [0.30, 0.20, 0.02, 0.05];
            let loss: f64 = slots
                .iter()
                .zip(plan)
                .enumerate()
                .map(|(i, (_, &(scheme, r)))| {
                    let penalty = if i == 2 && scheme == Scheme::Column { 2.0 } else { 1.0 };
                    sens[i] * penalty * (r as f64).powi(2)
                })
                .sum();
            Ok((0.99 - loss, false))
        }
    }

    fn lenet_slots() -> Vec<Slot> {
        let arch = zoo::build("lenet5", [1, 28, 28], 10).unwrap();
        slots(&arch, &arch, &[Scheme::Filter, Scheme::Column], 0.5).unwrap()
    }

    fn search(mode: Mode, seed: u64) -> Outcome {
        let s = lenet_slots();
        let dense = metric_of(&s, &vec![(Scheme::Column, 0.0); s.len()], Metric::Params);
        let cfg = SearchConfig { mode, ..SearchConfig::default() };
        anneal(&s, &[(Metric::Params, dense / 20.0)], &cfg, seed, &mut Landscape { calls: 0 }, |_| Ok(())).unwrap()
    }

    #[test]
    fn every_candidate_meets_the_budget_and_the_schedule_is_followed() {
        let s = lenet_slots();
        let dense = metric_of(&s, &vec![(Scheme::Column, 0.0); s.len()], Metric::Params);
        let out = search(Mode::Guided, 3);
        // T0 = 2 cools by 0.9 to below 0.1 after 29 iterations, within max_iterations = 30
        assert_eq!(out.candidates.len(), 1 + 29);
        for (i, c) in out.candidates.iter().enumerate().skip(1) {
            assert!((c.temperature - 2.0 * 0.9f64.powi(i as i32 - 1)).abs() < 1e-9);
        }
        for c in &out.candidates {
            assert!(c.params <= dense / 20.0, "candidate {} keeps {} params", c.iteration, c.params);
            assert!(c.action.layers[0].rate <= 0.5, "first-layer cap broken");
            assert!(!(c.action.layers[3].scheme == Scheme::Filter && c.action.layers[3].rate > 0.0), "classifier rows pruned");
        }
        let best = out.candidates.iter().map(|c| c.quick_accuracy).fold(0.0, f64::max);
        assert_eq!(out.best_quick_accuracy, best);
        assert_eq!(search(Mode::Uniform, 3).candidates.len(), 1, "uniform rates evaluate one action");
    }

    #[test]
    fn a_joint_target_bounds_every_candidate_on_both_metrics() {
        let s = lenet_slots();
        let (dp, df) = estimate(&s, &vec![(Scheme::Column, 0.0); s.len()]);
        let limits = [(Metric::Params, dp / 20.0), (Metric::Flops, df / 6.0)];
        for mode in [Mode::Guided, Mode::Unguided, Mode::Uniform] {
            let cfg = SearchConfig { mode, ..SearchConfig::default() };
            let out = anneal(&s, &limits, &cfg, 5, &mut Landscape { calls: 0 }, |_| Ok(())).unwrap();
            for c in &out.candidates {
                assert!(c.params <= limits[0].1 && c.flops <= limits[1].1, "{mode:?} candidate {}: {} params, {} FLOPs", c.iteration, c.params, c.flops);
            }
        }
    }

    #[test]
    fn evaluations_to_best_counts_fresh_evaluations_up_to_the_first_best() {
        for seed in 0..4 {
            let out = search(Mode::Guided, seed);
            let fresh: Vec<&Candidate> = out.candidates.iter().filter(|c| !c.cached).collect();
            assert_eq!(out.evaluations, fresh.len());
            let first_best = fresh.iter().position(|c| c.quick_accuracy == out.best_quick_accuracy).unwrap() + 1;
            assert_eq!(out.evaluations_to_best, first_best, "seed {seed}");
            assert!(out.evaluations_to_best >= 1 && out.evaluations_to_best <= out.evaluations);
        }
        let uniform = search(Mode::Uniform, 0);
        assert_eq!((uniform.evaluations, uniform.evaluations_to_best), (1, 1));
    }

    #[test]
    fn guided_search_beats_unguided_and_uniform_on_average() {
        let mean = |mode| (0..8).map(|seed| search(mode, seed).best_quick_accuracy).sum::<f64>() / 8.0;
        let (g, u, f) = (mean(Mode::Guided), mean(Mode::Unguided), mean(Mode::Uniform));
        eprintln!("synthetic landscape, mean best accuracy over 8 seeds: guided {g:.4}, unguided {u:.4}, uniform {f:.4}");
        assert!(g > u && u > f, "guided {g:.4}, unguided {u:.4}, uniform {f:.4}");
    }
}
