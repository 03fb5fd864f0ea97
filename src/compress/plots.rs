//! The run's PNG plots (plotters, with an embedded DejaVu Sans so no system font is needed):
//! accuracy against params reduction and against FLOPs reduction per round, kept fraction per
//! layer, and the search trajectory.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

use super::peer::Peer;
use super::state::{RunDir, RunState};
use crate::search::Metric;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // the embedded font is valid; if registration failed the plots would lack text only
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

pub fn write_all(dir: &RunDir, state: &RunState) -> Result<()> {
    register_font();
    accuracy_vs_reduction(&dir.file("accuracy_vs_reduction.png"), state, Metric::Params)?;
    accuracy_vs_reduction(&dir.file("accuracy_vs_flops_reduction.png"), state, Metric::Flops)?;
    kept_per_layer(&dir.file("kept_per_layer.png"), state)?;
    search_trajectory(&dir.file("search.png"), state)?;
    Ok(())
}

fn err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("cannot draw {}: {e:?}", path.display())
}

/// Renders into a temporary file and renames it into place (atomic like every other file).
fn atomic_png(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension("tmp.png");
    draw(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow!("cannot move {} into place: {e}", path.display()))
}

fn accuracy_vs_reduction(path: &Path, state: &RunState, metric: Metric) -> Result<()> {
    let Some(base) = &state.baseline else { return Ok(()) };
    let mut pts = vec![(1.0f64, 100.0 * base.point.test_accuracy, 100.0 * base.point.val_accuracy, true)];
    for r in &state.rounds {
        let x = if metric == Metric::Params { r.params_reduction } else { r.flops_reduction };
        pts.push((x, 100.0 * r.point.test_accuracy, 100.0 * r.point.val_accuracy, r.accepted));
    }
    let caption = format!("Accuracy vs {} reduction, per round", metric.label());
    let x_desc = format!("{} reduction (×, log)", metric.label());
    let xmax = pts.iter().map(|p| p.0).fold(1.0, f64::max) * 1.3;
    let ymin = pts.iter().map(|p| p.1.min(p.2)).fold(100.0, f64::min) - 1.0;
    let ymax = pts.iter().map(|p| p.1.max(p.2)).fold(0.0, f64::max) + 0.5;
    atomic_png(path, |tmp| {
        let root = BitMapBackend::new(tmp, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(err(path))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption.as_str(), ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((1.0f64..xmax).log_scale(), ymin..ymax)
            .map_err(err(path))?;
        chart.configure_mesh().x_desc(x_desc.as_str()).y_desc("accuracy (%)").x_label_formatter(&one_two_five).draw().map_err(err(path))?;
        let accepted: Vec<_> = pts.iter().filter(|p| p.3).collect();
        chart
            .draw_series(LineSeries::new(accepted.iter().map(|p| (p.0, p.1)), BLUE.stroke_width(2)))
            .map_err(err(path))?
            .label("test")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart.draw_series(accepted.iter().map(|p| Circle::new((p.0, p.1), 5, BLUE.filled()))).map_err(err(path))?;
        chart
            .draw_series(LineSeries::new(accepted.iter().map(|p| (p.0, p.2)), GREEN.stroke_width(2)))
            .map_err(err(path))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
        chart
            .draw_series(pts.iter().filter(|p| !p.3).map(|p| Cross::new((p.0, p.1), 7, RED.stroke_width(2))))
            .map_err(err(path))?
            .label("rejected round (test)")
            .legend(|(x, y)| Cross::new((x + 10, y), 5, RED));
        chart.configure_series_labels().position(SeriesLabelPosition::LowerLeft).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err(path))?;
        root.present().map_err(err(path))?;
        Ok(())
    })
}

/// Kept fraction of each layer's dense params after every accepted round.
fn kept_per_layer(path: &Path, state: &RunState) -> Result<()> {
    let Some(base) = &state.baseline else { return Ok(()) };
    let accepted: Vec<_> = state.rounds.iter().filter(|r| r.accepted).collect();
    let names: Vec<String> = base.layers.iter().map(|l| l.name.clone()).collect();
    let n = accepted.len().max(1);
    let width = 0.8 / n as f64;
    atomic_png(path, |tmp| {
        let root = BitMapBackend::new(tmp, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(err(path))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Kept fraction of each layer's params", ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..names.len() as f64 - 0.5, (1e-3f64..1.0).log_scale())
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .x_labels(names.len().max(1) * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 { names.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
            })
            .x_desc("layer")
            .y_desc("kept fraction (log)")
            .draw()
            .map_err(err(path))?;
        for (k, r) in accepted.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let bars: Vec<(f64, f64)> = base
                .layers
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let kept = r.layers.iter().find(|l| l.name == d.name).map_or(0, |l| l.params);
                    (i as f64 - 0.4 + k as f64 * width, (kept as f64 / d.params.max(1) as f64).clamp(1e-3, 1.0))
                })
                .collect();
            chart
                .draw_series(bars.into_iter().map(|(x0, f)| Rectangle::new([(x0, 1e-3), (x0 + width, f)], color.filled())))
                .map_err(err(path))?
                .label(format!("round {}", r.round))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err(path))?;
        root.present().map_err(err(path))?;
        Ok(())
    })
}

fn search_trajectory(path: &Path, state: &RunState) -> Result<()> {
    let mut series = Vec::new();
    let mut x = 0usize;
    for r in &state.rounds {
        let pts: Vec<(usize, f64, bool)> = r
            .candidates
            .iter()
            .map(|c| {
                x += 1;
                (x, 100.0 * c.quick_accuracy, c.accepted)
            })
            .collect();
        series.push((r.round, pts));
    }
    let all: Vec<f64> = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).collect();
    if all.is_empty() {
        return Ok(());
    }
    let ymin = all.iter().copied().fold(100.0, f64::min) - 1.0;
    let ymax = all.iter().copied().fold(0.0, f64::max) + 1.0;
    atomic_png(path, |tmp| {
        let root = BitMapBackend::new(tmp, (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(err(path))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Search trajectory: quick accuracy of every candidate", ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0..x + 1, ymin..ymax)
            .map_err(err(path))?;
        chart.configure_mesh().x_desc("candidate (all rounds)").y_desc("quick validation accuracy (%)").draw().map_err(err(path))?;
        for (k, (round, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            chart
                .draw_series(pts.iter().map(|&(i, a, acc)| {
                    let style = if acc { color.filled() } else { color.stroke_width(1) };
                    Circle::new((i, a), 4, style)
                }))
                .map_err(err(path))?
                .label(format!("round {round} (filled: accepted)"))
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err(path))?;
        root.present().map_err(err(path))?;
        Ok(())
    })
}

/// A named accuracy-versus-params curve: (params reduction, test change in points), (1, 0) first.
pub struct Curve {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// The round each point comes from (0: the baseline).
    pub rounds: Vec<u64>,
}

/// `compare --plot`: every run's accepted rounds, and the peer's curve dashed in black.
pub fn test_change_vs_params(path: &Path, curves: &[Curve], peer: Option<&Peer>) -> Result<()> {
    register_font();
    let all = curves.iter().map(|c| &c.points).chain(peer.map(|p| &p.points)).flatten();
    let (xmax, ymin, ymax) = all.fold((1.0f64, 0.0f64, 0.0f64), |(x, lo, hi), p| (x.max(p.0), lo.min(p.1), hi.max(p.1)));
    atomic_png(path, |tmp| {
        let root = BitMapBackend::new(tmp, (900, 550)).into_drawing_area();
        root.fill(&WHITE).map_err(err(path))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Test accuracy change vs params reduction", ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((1.0f64..xmax * 1.3).log_scale(), (ymin - 1.0)..(ymax + 1.0))
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .x_desc("params reduction (×, log)")
            .y_desc("test accuracy change (points)")
            .x_label_formatter(&one_two_five)
            .draw()
            .map_err(err(path))?;
        for (k, c) in curves.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            chart
                .draw_series(LineSeries::new(c.points.iter().copied(), color.stroke_width(2)))
                .map_err(err(path))?
                .label(c.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(c.points.iter().map(|&p| Circle::new(p, 5, color.filled()))).map_err(err(path))?;
        }
        if let Some(p) = peer {
            chart
                .draw_series(DashedLineSeries::new(p.points.iter().copied(), 8, 5, BLACK.stroke_width(2)))
                .map_err(err(path))?
                .label(p.name.as_str())
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
            chart.draw_series(p.points.iter().map(|&q| Cross::new(q, 6, BLACK.stroke_width(2)))).map_err(err(path))?;
        }
        chart.configure_series_labels().position(SeriesLabelPosition::LowerLeft).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err(path))?;
        root.present().map_err(err(path))?;
        Ok(())
    })
}

/// Labels a log axis at 1, 2 and 5 of each decade only: every key point labelled crowds the
/// labels into each other near each power of ten.
fn one_two_five(x: &f64) -> String {
    let m = x / 10f64.powf(x.log10().floor());
    if [1.0, 2.0, 5.0].iter().any(|k| (m - k).abs() < 1e-6) {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_axis_labels_only_one_two_and_five() {
        let labels: Vec<String> = [1.0, 2.0, 3.0, 5.0, 9.0, 10.0, 20.0, 40.0, 50.0, 60.0, 100.0].iter().map(super::one_two_five).collect();
        assert_eq!(labels, ["1", "2", "", "5", "", "10", "20", "", "50", "", "100"]);
    }
}
