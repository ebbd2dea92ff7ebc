//! The part of a BERT `config.json` the encoder needs, checked against what it implements.

use std::path::Path;

use serde::Deserialize;

use super::ModelError;

/// Hyperparameters read from `config.json` (Hugging Face's BERT layout).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

impl BertConfig {
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, ModelError> {
        let corrupt = |reason: String| ModelError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let config: Self =
            serde_json::from_str(text).map_err(|e| corrupt(format!("not a BERT config: {e}")))?;
        // Only what this encoder implements; anything else would embed wrongly, silently.
        if config.model_type != "bert" {
            return Err(corrupt(format!(
                "model_type {:?} is not \"bert\"",
                config.model_type
            )));
        }
        if config.hidden_act != "gelu" {
            return Err(corrupt(format!(
                "hidden_act {:?} is not \"gelu\"",
                config.hidden_act
            )));
        }
        if config.position_embedding_type != "absolute" {
            return Err(corrupt(format!(
                "position_embedding_type {:?} is not \"absolute\"",
                config.position_embedding_type
            )));
        }
        let sizes = [
            ("vocab_size", config.vocab_size),
            ("hidden_size", config.hidden_size),
            ("num_hidden_layers", config.num_hidden_layers),
            ("num_attention_heads", config.num_attention_heads),
            ("intermediate_size", config.intermediate_size),
            ("max_position_embeddings", config.max_position_embeddings),
            ("type_vocab_size", config.type_vocab_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(corrupt(format!("{name} is 0")));
        }
        if !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
        {
            return Err(corrupt(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            )));
        }
        Ok(config)
    }
}
