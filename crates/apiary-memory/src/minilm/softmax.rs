//! Attention probabilities: `softmax(scores + mask)` over the last dimension in one pass.
//!
//! Replaces a broadcast add of the padding mask followed by candle's softmax, whose `exp` is
//! the C library's scalar one; here exp is [`fastmath::exp_nonpositive`]
//! (super::fastmath::exp_nonpositive), vectorised, as every shifted score is `<= 0`.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape};
use rayon::prelude::*;

use super::{fastmath::exp_nonpositive, storage::f32_slice};

/// Scores `[batch, heads, len, len]` and an additive mask `[batch, len]` (0 for a token,
/// -inf for padding) to probabilities of the scores' shape.
pub(crate) struct MaskedSoftmax;

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "apiary-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        scores: &CpuStorage,
        scores_layout: &Layout,
        mask: &CpuStorage,
        mask_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let scores = f32_slice(self.name(), scores, scores_layout)?;
        let mask = f32_slice(self.name(), mask, mask_layout)?;
        let &[batch, heads, rows, len] = scores_layout.dims() else {
            candle_core::bail!(
                "{}: scores {:?} are not 4-d",
                self.name(),
                scores_layout.dims()
            );
        };
        if rows != len || mask.len() != batch * len {
            candle_core::bail!(
                "{}: mask of {} for scores {:?}",
                self.name(),
                mask.len(),
                scores_layout.dims()
            );
        }
        let mut out = scores.to_vec();
        // One task per sequence: its heads' rows share one mask row.
        out.par_chunks_mut(heads * rows * len)
            .zip(mask.par_chunks(len))
            .for_each(|(sequence, mask)| {
                // Compiled for the widest SIMD the CPU has (AVX-512, AVX2), chosen at run time.
                pulp::Arch::new().dispatch(|| {
                    for row in sequence.chunks_exact_mut(len) {
                        for (v, m) in row.iter_mut().zip(mask) {
                            *v += m;
                        }
                        let max = lanes(row, f32::NEG_INFINITY, f32::max);
                        for v in row.iter_mut() {
                            *v = exp_nonpositive(*v - max);
                        }
                        let inv = 1.0 / lanes(row, 0.0, |a, b| a + b);
                        row.iter_mut().for_each(|v| *v *= inv);
                    }
                })
            });
        Ok((CpuStorage::F32(out), scores_layout.shape().clone()))
    }
}

/// Folds `row` with `op` in 8 independent lanes, then folds the lanes: the compiler keeps a
/// float reduction in order (one element after another), so only split lanes vectorise.
#[inline(always)]
fn lanes(row: &[f32], init: f32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let mut chunks = row.chunks_exact(8);
    for chunk in &mut chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a = op(*a, *v);
        }
    }
    let tail = chunks.remainder().iter().fold(init, |a, v| op(a, *v));
    acc.into_iter().fold(tail, op)
}
