//! A scripted reply made concrete for one request: the text in streamable pieces, a tool
//! call, the faults to show, and the token counts.

use crate::script::{marked, Reply};

/// What one response carries, whatever the protocol.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    /// A number unique in this server, for response and tool call ids.
    pub(crate) id: u64,
    pub(crate) text_pieces: Vec<String>,
    /// A tool call: name and arguments as JSON text.
    pub(crate) tool_call: Option<(String, String)>,
    /// Break the connection after the first pieces.
    pub(crate) cut: bool,
    /// Send a chunk that is not JSON before the end.
    pub(crate) malformed: bool,
    /// End with a finish reason the protocol does not define.
    pub(crate) unknown_finish: bool,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

/// One piece of a streamed body.
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    /// One `data:` payload (OpenAI).
    Data(String),
    /// One named event and its payload (Anthropic).
    Event(&'static str, String),
    /// Break the connection here.
    Break,
}

/// Tokens, as a provider would count them roughly: one per four bytes, at least one.
pub(crate) fn tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4).max(1)
}

impl Answer {
    /// Makes `reply` concrete. `forced_tool` is the tool a request forces (Anthropic's
    /// `tool_choice`), which a structured reply then calls.
    pub(crate) fn new(
        reply: &Reply,
        id: u64,
        input_bytes: usize,
        forced_tool: Option<&str>,
    ) -> Self {
        let mut a = Answer {
            id,
            input_tokens: tokens(input_bytes),
            ..Answer::default()
        };
        match reply {
            Reply::Text(t) => a.text_pieces = pieces(&marked(t)),
            Reply::ToolCall { name, arguments } => {
                a.tool_call = Some((name.clone(), arguments.to_string()));
            }
            Reply::Json(v) => match forced_tool {
                Some(tool) => a.tool_call = Some((tool.to_owned(), v.to_string())),
                None => a.text_pieces = pieces(&v.to_string()),
            },
            Reply::CutStream(t) => {
                a.text_pieces = pieces(&marked(t));
                a.cut = true;
            }
            Reply::Malformed => {
                a.text_pieces = pieces(&marked("this stream breaks"));
                a.malformed = true;
            }
            Reply::UnknownFinish => {
                a.text_pieces = pieces(&marked("this answer ends strangely"));
                a.unknown_finish = true;
            }
            // Resolved before an answer is made.
            Reply::Status { .. } | Reply::Slow(..) | Reply::Attempts(_) => {}
        }
        let out_bytes = a.text_pieces.iter().map(String::len).sum::<usize>()
            + a.tool_call
                .as_ref()
                .map_or(0, |(n, args)| n.len() + args.len());
        a.output_tokens = tokens(out_bytes);
        a
    }
}

/// `text` in pieces of about three words, as a model streams it.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, word) in text.split_inclusive(' ').enumerate() {
        current.push_str(word);
        if i % 3 == 2 {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}
