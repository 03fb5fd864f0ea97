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
use super::target::Metric;
use crate::gpu::admm::Scheme;
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
        if !(0.0..=1.0).contains(&self.p_flip) || !(self.perturbation >= 0.0 && self.perturbation <= 1.0) {
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
}

/// Searches for the action on the current model that keeps at most `budget` of `metric` and
/// loses the least quick-evaluated accuracy. `on_candidate` sees each candidate as it is logged.
pub fn anneal(
    slots: &[Slot],
    metric: Metric,
    budget: f64,
    cfg: &SearchConfig,
    seed: u64,
    quick: &mut QuickEval,
    mut on_candidate: impl FnMut(&Candidate) -> Result<()>,
) -> Result<Outcome> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let default_scheme = |s: &Slot| if s.schemes.contains(&Scheme::Column) { Scheme::Column } else { Scheme::Filter };
    let start: Plan = slots.iter().map(|s| (default_scheme(s), 0.5f32.min(s.cap(default_scheme(s))))).collect();
    let mut current = rescale(slots, &start, metric, budget)?;
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
    if cfg.mode == Mode::Uniform {
        return Ok(Outcome { best: to_action(slots, &best.0), best_quick_accuracy: best.1, candidates });
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
                sort_by_size(slots, &mut cand, metric);
            }
            cand = rescale(slots, &cand, metric, budget)?;
            if key(slots, &cand) != key(slots, &current) {
                break;
            }
        }
        let (acc, cached) = quick.accuracy(slots, &cand)?;
        // energy E = −accuracy in points
        let delta = 100.0 * (current_acc - acc);
        let accepted = delta <= 0.0 || rng.gen::<f64>() < (-delta / t).exp();
        log(it, t, &cand, acc, accepted, cached, &mut candidates)?;
        history.record(&current, 100.0 * current_acc, &cand, 100.0 * acc);
        if acc > best.1 {
            best = (cand.clone(), acc);
        }
        if accepted {
            current = cand;
            current_acc = acc;
        }
        t *= cfg.cooling;
    }
    Ok(Outcome { best: to_action(slots, &best.0), best_quick_accuracy: best.1, candidates })
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
