//! The replay buffer behind `/events`: the last N events, already encoded, each at a
//! position that only grows.
//!
//! One writer (the console's pump) appends; any number of readers follow at their own pace
//! with a cursor (the next position they want). A reader that falls behind the buffer's
//! start is told how many frames it missed and goes on from the live end: the writer never
//! waits for a reader, so a slow page cannot slow the swarm.
//!
//! Positions, not event numbers, order the buffer: a swarm's event numbers may arrive out
//! of numeric order (two threads publishing at once), so a reconnecting client's
//! `Last-Event-ID` is looked up among the frames kept, not compared.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use apiary_core::SwarmEvent;
use tokio::sync::watch;

/// One SSE frame: a swarm event, encoded the first time a client reads it (most frames of a
/// busy swarm are overwritten before any client asks), or a message of the console's own.
#[derive(Debug)]
pub(crate) struct Frame {
    /// The swarm event's number, if it is one (the SSE `id`).
    pub(crate) seq: Option<u64>,
    source: Source,
    bytes: OnceLock<bytes::Bytes>,
}

#[derive(Debug)]
enum Source {
    Event(SwarmEvent),
    Encoded,
}

impl Frame {
    /// A swarm event's frame.
    pub(crate) fn event(event: SwarmEvent) -> Self {
        Self {
            seq: Some(event.seq()),
            source: Source::Event(event),
            bytes: OnceLock::new(),
        }
    }

    /// A frame already encoded (`event: lagged`, ...).
    pub(crate) fn encoded(bytes: bytes::Bytes) -> Self {
        Self {
            seq: None,
            source: Source::Encoded,
            bytes: OnceLock::from(bytes),
        }
    }

    /// The bytes to write: `id:`, `event:`, `data:` lines and the blank line.
    pub(crate) fn bytes(&self) -> &bytes::Bytes {
        self.bytes.get_or_init(|| match &self.source {
            Source::Event(event) => encode(event),
            Source::Encoded => bytes::Bytes::new(),
        })
    }
}

fn encode(event: &SwarmEvent) -> bytes::Bytes {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(160);
    let _ = write!(out, "id: {}\ndata: ", event.seq());
    // Compact JSON has no newline, so one `data:` line carries it.
    if let Err(e) = serde_json::to_writer(&mut out, event) {
        out.truncate(0);
        let _ = write!(out, "id: {}\ndata: ", event.seq());
        let fallback = serde_json::json!({ "seq": event.seq(), "event": "unencodable", "error": e.to_string() });
        let _ = serde_json::to_writer(&mut out, &fallback);
    }
    out.extend_from_slice(b"\n\n");
    out.into()
}

struct Inner {
    frames: VecDeque<Arc<Frame>>,
    /// Position of `frames[0]`.
    first: u64,
}

/// What a reader gets from [`Ring::read`].
#[derive(Debug)]
pub(crate) enum Read {
    /// Frames from the cursor on (the cursor moved past them).
    Frames(Vec<Arc<Frame>>),
    /// The reader fell behind: this many frames were dropped for it; the cursor now points at
    /// the oldest kept.
    Missed(u64),
    /// Nothing new yet.
    Empty,
}

/// A bounded buffer of encoded frames; see the module docs.
pub(crate) struct Ring {
    inner: Mutex<Inner>,
    capacity: usize,
    /// The position the next frame will take: readers wait for it to move.
    end: watch::Sender<u64>,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                frames: VecDeque::with_capacity(capacity.min(1 << 16)),
                first: 0,
            }),
            capacity: capacity.max(1),
            end: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // No code panics while holding it; the buffer stays consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a frame, dropping the oldest when full.
    pub(crate) fn push(&self, frame: Frame) {
        self.push_all(std::iter::once(frame));
    }

    /// Appends frames under one lock and one wake-up of the readers.
    pub(crate) fn push_all(&self, frames: impl IntoIterator<Item = Frame>) {
        let end = {
            let mut inner = self.lock();
            for frame in frames {
                if inner.frames.len() == self.capacity {
                    inner.frames.pop_front();
                    inner.first += 1;
                }
                inner.frames.push_back(Arc::new(frame));
            }
            inner.first + inner.frames.len() as u64
        };
        self.end.send_replace(end);
    }

    /// Where a reader should start: after the frame of event `last_seen` if it is still
    /// kept; at the oldest kept if `last_seen` is older than all of them (having missed some)
    /// or if there is none (a fresh reader gets the history kept); at the end (live) for an
    /// id this buffer never held. Also gives how many frames were missed.
    pub(crate) fn cursor_after(&self, last_seen: Option<u64>) -> (u64, u64) {
        let inner = self.lock();
        let end = inner.first + inner.frames.len() as u64;
        let Some(last) = last_seen else {
            return (inner.first, 0);
        };
        // Newest first: a reconnecting client is usually only a little behind.
        if let Some(i) = inner.frames.iter().rposition(|f| f.seq == Some(last)) {
            return (inner.first + i as u64 + 1, 0);
        }
        let oldest = inner.frames.iter().find_map(|f| f.seq);
        let newest = inner.frames.iter().rev().find_map(|f| f.seq);
        match (oldest, newest) {
            // Evicted: everything kept is newer than what the client saw.
            (Some(oldest), _) if last < oldest => (inner.first, oldest - last - 1),
            // Not kept, but within what is (numbers arrive out of order, and the frame of
            // `last` was evicted while older-numbered ones stayed): from the first newer.
            (Some(_), Some(newest)) if last < newest => {
                let i = inner
                    .frames
                    .iter()
                    .position(|f| f.seq.is_some_and(|s| s > last))
                    .unwrap_or(inner.frames.len());
                (inner.first + i as u64, 0)
            }
            // Newer than anything kept (an id from another server process): live.
            _ => (end, 0),
        }
    }

    /// Frames from `cursor` on, at most `max`; moves the cursor. A reader more than the
    /// buffer behind skips to the end and goes on from what comes next: it has lost the
    /// thread anyway (its page re-reads the snapshot), and encoding a window of old frames
    /// for each such reader would cost a flooded swarm the most exactly when it is busiest.
    pub(crate) fn read(&self, cursor: &mut u64, max: usize) -> Read {
        let inner = self.lock();
        if *cursor < inner.first {
            let end = inner.first + inner.frames.len() as u64;
            let missed = end - *cursor;
            *cursor = end;
            return Read::Missed(missed);
        }
        let skip = (*cursor - inner.first) as usize;
        if skip >= inner.frames.len() {
            return Read::Empty;
        }
        let frames: Vec<Arc<Frame>> = inner.frames.iter().skip(skip).take(max).cloned().collect();
        *cursor += frames.len() as u64;
        Read::Frames(frames)
    }

    /// A receiver that changes whenever a frame is appended.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.end.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        let mut f = Frame::encoded(bytes::Bytes::from(format!("id: {seq}\n\n")));
        f.seq = Some(seq);
        f
    }

    fn seqs(read: Read) -> Vec<u64> {
        match read {
            Read::Frames(f) => f.iter().map(|f| f.seq.unwrap()).collect(),
            other => panic!("expected frames, got {other:?}"),
        }
    }

    #[test]
    fn a_reader_resumes_after_the_last_event_it_saw_even_out_of_numeric_order() {
        let ring = Ring::new(8);
        for seq in [1, 3, 2, 4] {
            ring.push(frame(seq));
        }
        let (mut cursor, missed) = ring.cursor_after(Some(3));
        assert_eq!(missed, 0);
        assert_eq!(seqs(ring.read(&mut cursor, 100)), [2, 4]);
        assert!(matches!(ring.read(&mut cursor, 100), Read::Empty));
    }

    #[test]
    fn a_reader_behind_the_buffer_is_told_how_much_it_missed() {
        let ring = Ring::new(4);
        let mut slow = 0;
        for seq in 1..=10 {
            ring.push(frame(seq));
        }
        // Behind the buffer: told what it missed, then live from the end.
        assert!(matches!(ring.read(&mut slow, 3), Read::Missed(10)));
        assert!(matches!(ring.read(&mut slow, 3), Read::Empty));
        ring.push(frame(11));
        assert_eq!(seqs(ring.read(&mut slow, 100)), [11]);
        // Reconnecting with an evicted id: from the oldest kept, having missed 3..=7.
        let (mut cursor, missed) = ring.cursor_after(Some(2));
        assert_eq!(missed, 5);
        assert_eq!(seqs(ring.read(&mut cursor, 100)), [8, 9, 10, 11]);
        // A fresh reader gets the history kept; an id never held starts live.
        let (mut fresh, _) = ring.cursor_after(None);
        assert_eq!(seqs(ring.read(&mut fresh, 100)), [8, 9, 10, 11]);
        let (mut live, _) = ring.cursor_after(Some(99));
        assert!(matches!(ring.read(&mut live, 100), Read::Empty));
    }
}
