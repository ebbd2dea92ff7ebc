//! BERT's GELU, `x * Phi(x)` with the exact (erf) normal CDF, fused with the bias add of the
//! linear layer before it, as one vectorisable pass split across rayon's threads.
//!
//! candle's own `gelu_erf` calls the `libm` crate's scalar `erff` per element: in a profile
//! of this encoder that was a fifth of the time, more than any op but the matrix multiplies.
//! Here erf is [`fastmath::erf`](super::fastmath::erf), and the bias is added in the same pass
//! instead of one of its own over the layer's widest output.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape};
use rayon::prelude::*;

use super::{fastmath::erf, storage::f32_slice};

/// `gelu(x + bias)` for a contiguous f32 `x` of shape `[.., n]` and a bias of shape `[n]`,
/// applied with `Tensor::apply_op2_no_bwd`.
pub(crate) struct BiasGelu;

/// Rows per rayon task, so that scheduling is noise next to the work.
const ROWS: usize = 16;

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "apiary-bias-gelu"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(self.name(), x, x_layout)?;
        let bias = f32_slice(self.name(), bias, bias_layout)?;
        let n = bias.len();
        if n == 0 || x_layout.dims().last() != Some(&n) {
            candle_core::bail!(
                "{}: bias of {n} for rows of {:?}",
                self.name(),
                x_layout.dims()
            );
        }
        let mut out = x.to_vec();
        out.par_chunks_mut(n * ROWS).for_each(|rows| {
            // Compiled for the widest SIMD the CPU has (AVX-512, AVX2), chosen at run time.
            pulp::Arch::new().dispatch(|| {
                for row in rows.chunks_exact_mut(n) {
                    for (v, b) in row.iter_mut().zip(bias) {
                        let x = *v + b;
                        *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                    }
                }
            })
        });
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }
}
