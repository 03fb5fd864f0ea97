//! Timing a plan of dispatches: with GPU timestamps where the adapter has them (each repetition
//! one compute pass with a timestamp at its start and end, all repetitions in one submission,
//! so fence latency and submission overhead are not measured), else by the wall clock around
//! each submission and wait.

use anyhow::{anyhow, Result};
use std::time::Instant;

use super::context::Gpu;
use super::kernel::{record_with, Dispatch};

/// How a time was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Timer {
    /// GPU timestamps at the start and end of each repetition's compute pass.
    Gpu,
    /// Wall clock around submit-and-wait.
    Wall,
}

impl Gpu {
    /// Whether the device was opened with timestamp queries.
    pub fn has_timestamps(&self) -> bool {
        self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Median time in ms of `reps` runs of `plan` after two warm-up runs, by `timer` (GPU
    /// timestamps fall back to the wall clock where the adapter has none).
    pub fn time_plan(&self, plan: &[Dispatch], reps: usize, timer: Timer) -> Result<(f64, Timer)> {
        let reps = reps.max(1);
        for _ in 0..2 {
            self.run(plan)?;
            self.wait()?;
        }
        let mut ms = match timer {
            Timer::Gpu if self.has_timestamps() => self.timestamps(plan, reps)?,
            _ => {
                let mut v = Vec::with_capacity(reps);
                for _ in 0..reps {
                    let t = Instant::now();
                    self.run(plan)?;
                    self.wait()?;
                    v.push(t.elapsed().as_secs_f64() * 1e3);
                }
                return Ok((median(&mut v), Timer::Wall));
            }
        };
        Ok((median(&mut ms), Timer::Gpu))
    }

    /// Per-repetition GPU times in ms: `reps` passes in one encoder, timestamps resolved and read.
    fn timestamps(&self, plan: &[Dispatch], reps: usize) -> Result<Vec<f64>> {
        let count = (2 * reps) as u32;
        let set = self.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("bench timestamps"), ty: wgpu::QueryType::Timestamp, count });
        let bytes = 8 * count as u64;
        let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("resolved timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamp staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        for r in 0..reps as u32 {
            let writes = wgpu::ComputePassTimestampWrites { query_set: &set, beginning_of_pass_write_index: Some(2 * r), end_of_pass_write_index: Some(2 * r + 1) };
            record_with(&mut enc, plan, Some(writes));
        }
        enc.resolve_query_set(&set, 0..count, &resolved, 0);
        enc.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
        self.submit(enc)?;
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv().map_err(|_| anyhow!("timestamp read-back channel closed"))?.map_err(|e| anyhow!("timestamp read-back failed: {e}"))?;
        let view = slice.get_mapped_range().map_err(|e| anyhow!("timestamp map failed: {e:?}"))?;
        let ticks: Vec<u64> = bytemuck::cast_slice::<u8, u64>(&view).to_vec();
        drop(view);
        staging.unmap();
        let period = self.queue.get_timestamp_period() as f64; // ns per tick
        Ok(ticks.chunks(2).map(|t| t[1].saturating_sub(t[0]) as f64 * period / 1e6).collect())
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
