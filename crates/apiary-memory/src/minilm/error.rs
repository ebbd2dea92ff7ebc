//! Why a MiniLM model directory could not be loaded, naming the file at fault.

use std::path::PathBuf;

/// A MiniLM model directory is missing a file, or one of its files is unreadable or corrupt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file the model needs is not in the directory.
    #[error(
        "{path}: missing (a MiniLM model directory holds config.json, tokenizer.json and \
         model.safetensors)"
    )]
    Missing {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A file exists but could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's complaint.
        source: std::io::Error,
    },
    /// A file was read but is not what the model needs.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}
