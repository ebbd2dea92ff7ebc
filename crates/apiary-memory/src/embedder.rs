//! Turning text into vectors: the [`Embedder`] trait and the built-in [`HashingEmbedder`].

use crate::error::BoxError;

/// Embeds text into vectors of a fixed dimension.
///
/// Two come with apiary: the dependency-free [`HashingEmbedder`] (shared words, no meaning)
/// and, with the `minilm` feature, `MiniLmEmbedder` (all-MiniLM-L6-v2 sentence embeddings).
/// Plug in another model (an ONNX encoder, a remote embedding service) by implementing this
/// trait. The memory never embeds inside its actor: the texts of one call go to
/// [`embed_batch`](Embedder::embed_batch) on tokio's blocking pool, or on the caller's task
/// when the embedder [`is_cheap`](Embedder::is_cheap). Vectors need not be normalised: the
/// memory normalises every vector it stores or searches with.
///
/// ```
/// use apiary_memory::{Embedder, HashingEmbedder};
///
/// let embedder = HashingEmbedder::new(64);
/// let v = embedder.embed("the quick brown fox").unwrap();
/// assert_eq!(v.len(), embedder.dim());
/// ```
pub trait Embedder: Send + Sync + 'static {
    /// The length of every vector this embedder returns.
    fn dim(&self) -> usize;
    /// Embeds one text.
    fn embed(&self, text: &str) -> Result<Vec<f32>, BoxError>;

    /// Embeds several texts, one vector per text in order. Models that batch (one forward
    /// pass for many texts) override this; the default embeds one at a time.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BoxError> {
        texts.iter().map(|t| self.embed(t)).collect()
    }

    /// True when embedding takes microseconds, so it may run on the async caller's task. The
    /// default, false, sends every batch to tokio's blocking pool: a model that takes
    /// milliseconds must not hold up the other tasks of an async worker.
    fn is_cheap(&self) -> bool {
        false
    }
}

/// Feature hashing of words and word pairs into `dim` signed buckets, L2-normalised.
///
/// Texts that share words get a high cosine similarity; there is no notion of meaning beyond
/// shared tokens. It needs no model, is deterministic across runs and platforms (xxh3 with a
/// fixed seed), and is what text patterns use until a real model is plugged in.
#[derive(Debug, Clone, Copy)]
pub struct HashingEmbedder {
    dim: usize,
}

impl HashingEmbedder {
    /// A hashing embedder into `dim` dimensions (`dim` >= 1).
    pub fn new(dim: usize) -> Self {
        Self { dim: dim.max(1) }
    }

    fn bump(&self, v: &mut [f32], token: &[u8], weight: f32) {
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(token, 0x61_70_69_61_72_79);
        let bucket = (h % self.dim as u64) as usize;
        // The top bit picks the sign so collisions cancel out on average instead of adding up.
        let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
        v[bucket] += sign * weight;
    }
}

impl Embedder for HashingEmbedder {
    fn dim(&self) -> usize {
        self.dim
    }

    /// A few hashes per word: cheaper than a trip to the blocking pool.
    fn is_cheap(&self) -> bool {
        true
    }

    fn embed(&self, text: &str) -> Result<Vec<f32>, BoxError> {
        let tokens: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
            .collect();
        if tokens.is_empty() {
            return Err(format!("text {text:?} has no words to embed").into());
        }
        let mut v = vec![0.0f32; self.dim];
        for token in &tokens {
            self.bump(&mut v, token.as_bytes(), 1.0);
        }
        for pair in tokens.windows(2) {
            let joined = format!("{} {}", pair[0], pair[1]);
            self.bump(&mut v, joined.as_bytes(), 0.5);
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn shared_words_score_higher_and_output_is_stable() {
        let e = HashingEmbedder::new(256);
        let a = e.embed("build the sample crate").unwrap();
        let b = e.embed("Build the SAMPLE crate!").unwrap();
        let c = e.embed("weather forecast tomorrow").unwrap();
        assert!((cos(&a, &b) - 1.0).abs() < 1e-5);
        assert!(cos(&a, &c) < 0.5);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        assert!(e.embed("  ...  ").is_err());
    }
}
