//! Server-sent events, parsed as the bytes arrive: lines into events (`event:`, `data:`,
//! comments; `id:` and `retry:` are not needed here), dispatched at each blank line.
//!
//! Written here rather than taken from a crate because it is on every chunk of every call:
//! the parser this replaced built each event through several owned strings, and this one
//! borrows from its buffer until an event is complete (measured in `benches/llm.rs`).

use std::collections::VecDeque;

use crate::provider::WireEvent;

/// An incremental SSE parser.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// Parses `chunk`, pushing each event it completes onto `out`.
    ///
    /// # Errors
    ///
    /// A line that is not UTF-8.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut VecDeque<WireEvent>,
    ) -> Result<(), String> {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(end);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.line(line, out)?;
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole, out)?;
            }
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    fn line(&mut self, line: &[u8], out: &mut VecDeque<WireEvent>) -> Result<(), String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                data.pop(); // the newline after the last data line
                out.push_back(WireEvent {
                    event: self.event.take().filter(|e| e != "message"),
                    data,
                });
            }
            self.event = None;
            self.has_data = false;
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // a comment (keep-alive)
        }
        let line = std::str::from_utf8(line).map_err(|e| format!("a line is not UTF-8: {e}"))?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            _ => {} // id, retry, unknown fields: not used
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<(Option<String>, String)> {
        let mut p = SseParser::default();
        let mut out = VecDeque::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        out.into_iter().map(|e| (e.event, e.data)).collect()
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let whole: &[u8] = b": ping\n\nevent: message_start\ndata: {\"a\":1}\n\ndata: x\ndata: y\r\n\r\ndata: [DONE]\n\n";
        let expected = vec![
            (Some("message_start".to_owned()), "{\"a\":1}".to_owned()),
            (None, "x\ny".to_owned()),
            (None, "[DONE]".to_owned()),
        ];
        assert_eq!(parse(&[whole]), expected);
        for cut in 1..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(parse(&[a, b]), expected, "cut at {cut}");
        }
        // An event without its blank line is not dispatched.
        assert!(parse(&[b"data: half"]).is_empty());
        let mut p = SseParser::default();
        assert!(p.feed(b"data: \xff\n\n", &mut VecDeque::new()).is_err());
    }
}
