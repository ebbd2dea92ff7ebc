//! The BERT encoder on candle: embeddings, self-attention layers and masked mean pooling.
//!
//! Written against candle's tensor ops rather than taken from `candle-transformers`, which
//! compiles a hundred model families to offer this one, and so that the hot path is ours to
//! shape: one fused query/key/value projection per layer instead of three, the padding mask
//! built once per batch, and no dropout or pooler layers an embedder never uses.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear};

use super::{config::BertConfig, gelu::BiasGelu, softmax::MaskedSoftmax};

/// A tensor the checkpoint lacks or holds with the wrong shape.
#[derive(Debug)]
pub(crate) struct MissingTensor(pub String);

struct Weights<'a>(&'a mut HashMap<String, Tensor>);

impl Weights<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, MissingTensor> {
        // Checkpoints saved from `BertForXxx` prefix every name with "bert.".
        let tensor = self
            .0
            .remove(name)
            .or_else(|| self.0.remove(&format!("bert.{name}")))
            .ok_or_else(|| MissingTensor(format!("tensor {name:?} is missing")))?;
        if tensor.dims() != shape {
            return Err(MissingTensor(format!(
                "tensor {name:?} has shape {:?}, expected {shape:?}",
                tensor.dims()
            )));
        }
        tensor
            .to_dtype(DType::F32)
            .map_err(|e| MissingTensor(format!("tensor {name:?}: {e}")))
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear, MissingTensor> {
        let w = self.take(&format!("{name}.weight"), &[out, inp])?;
        let b = self.take(&format!("{name}.bias"), &[out])?;
        Ok(Linear::new(w, Some(b)))
    }

    fn norm(&mut self, name: &str, dim: usize) -> Result<(Tensor, Tensor), MissingTensor> {
        Ok((
            self.take(&format!("{name}.weight"), &[dim])?,
            self.take(&format!("{name}.bias"), &[dim])?,
        ))
    }
}

struct Layer {
    /// Query, key and value projections stacked into one `[3h, h]` matrix.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: (Tensor, Tensor),
    /// Without its bias, which [`BiasGelu`] adds.
    intermediate: Linear,
    intermediate_bias: Tensor,
    output: Linear,
    out_norm: (Tensor, Tensor),
}

/// all-MiniLM-L6-v2's encoder (any BERT with absolute positions and erf GELU).
pub(crate) struct Bert {
    words: Embedding,
    positions: Tensor,
    token_type: Tensor,
    norm: (Tensor, Tensor),
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    eps: f32,
}

impl Bert {
    pub(crate) fn new(
        config: &BertConfig,
        mut tensors: HashMap<String, Tensor>,
    ) -> Result<Self, MissingTensor> {
        let h = config.hidden_size;
        let mut w = Weights(&mut tensors);
        let words = Embedding::new(
            w.take("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            h,
        );
        let positions = w.take(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        // Every input is one segment: only token type 0's row is ever added.
        let token_type = w
            .take(
                "embeddings.token_type_embeddings.weight",
                &[config.type_vocab_size, h],
            )?
            .get(0)
            .map_err(|e| MissingTensor(e.to_string()))?;
        let norm = w.norm("embeddings.LayerNorm", h)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let mut parts = Vec::with_capacity(3);
            for which in ["query", "key", "value"] {
                parts.push(w.linear(&format!("{p}.attention.self.{which}"), h, h)?);
            }
            let cat = |f: fn(&Linear) -> Tensor| {
                Tensor::cat(&parts.iter().map(f).collect::<Vec<_>>(), 0)
                    .map_err(|e| MissingTensor(e.to_string()))
            };
            // The attention's 1/sqrt(head_dim) folded into the query rows: one pass fewer.
            let scale = 1.0 / ((h / config.num_attention_heads) as f64).sqrt();
            let scaled = |t: Tensor| -> Result<Tensor, MissingTensor> {
                let q = t.narrow(0, 0, h).and_then(|q| q * scale);
                let rest = t.narrow(0, h, 2 * h);
                q.and_then(|q| Tensor::cat(&[q, rest?], 0))
                    .map_err(|e| MissingTensor(e.to_string()))
            };
            let qkv = Linear::new(
                scaled(cat(|l| l.weight().clone())?)?,
                Some(scaled(cat(|l| {
                    l.bias().expect("built with a bias").clone()
                })?)?),
            );
            layers.push(Layer {
                qkv,
                attn_out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                intermediate: Linear::new(
                    w.take(
                        &format!("{p}.intermediate.dense.weight"),
                        &[config.intermediate_size, h],
                    )?,
                    None,
                ),
                intermediate_bias: w.take(
                    &format!("{p}.intermediate.dense.bias"),
                    &[config.intermediate_size],
                )?,
                output: w.linear(&format!("{p}.output.dense"), h, config.intermediate_size)?,
                out_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            words,
            positions,
            token_type,
            norm,
            layers,
            heads: config.num_attention_heads,
            head_dim: h / config.num_attention_heads,
            eps: config.layer_norm_eps as f32,
        })
    }

    /// The longest input the position table covers.
    pub(crate) fn max_positions(&self) -> usize {
        self.positions.dims()[0]
    }

    /// Mean-pooled, L2-normalised sentence vectors for a padded batch: `ids` (u32) and `mask`
    /// (f32) are `[batch, len]`, the mask 1 for a token and 0 for padding; returns
    /// `[batch, hidden]`.
    pub(crate) fn embed(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let hidden = self.token_type.dims1()?;
        let x = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.narrow(0, 0, len)?)?
            .broadcast_add(&self.token_type)?;
        let mut x = layer_norm(&x, &self.norm, self.eps)?;
        // Padding's scores get -inf, built once for every layer and head.
        let bias = mask
            .to_vec2::<f32>()?
            .into_iter()
            .flatten()
            .map(|m| if m > 0.0 { 0.0 } else { f32::NEG_INFINITY })
            .collect::<Vec<f32>>();
        let bias = Tensor::from_vec(bias, (batch, len), &DEVICE)?;
        for layer in &self.layers {
            let qkv = layer
                .qkv
                .forward(&x)?
                .reshape((batch, len, 3, self.heads, self.head_dim))?
                .permute((2, 0, 3, 1, 4))?;
            let q = qkv.get(0)?.contiguous()?;
            let k = qkv.get(1)?.contiguous()?;
            let v = qkv.get(2)?.contiguous()?;
            let probs = q.matmul(&k.t()?)?.apply_op2_no_bwd(&bias, &MaskedSoftmax)?;
            let context = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((batch, len, hidden))?;
            let attended = layer_norm(
                &(layer.attn_out.forward(&context)? + &x)?,
                &layer.attn_norm,
                self.eps,
            )?;
            let inner = layer
                .intermediate
                .forward(&attended)?
                .apply_op2_no_bwd(&layer.intermediate_bias, &BiasGelu)?;
            x = layer_norm(
                &(layer.output.forward(&inner)? + &attended)?,
                &layer.out_norm,
                self.eps,
            )?;
        }
        // Mean over real tokens only, as sentence-transformers' pooling does.
        let mask = mask.unsqueeze(2)?;
        let summed = x.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::INFINITY)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12, f64::INFINITY)?;
        mean.broadcast_div(&norms)
    }
}

fn layer_norm(x: &Tensor, (w, b): &(Tensor, Tensor), eps: f32) -> candle_core::Result<Tensor> {
    candle_nn::ops::layer_norm(&x.contiguous()?, w, b, eps)
}

/// The device every tensor lives on: the CPU.
pub(crate) const DEVICE: Device = Device::Cpu;
