//! The replay buffer behind `/events`: the last N events, already encoded, each at a
//! position that only grows.
//!
//! One writer (the console's pump) appends; any number of readers follow at their own pace
//! with a cursor (the next position they want). A reader that falls behind the buffer's
//! start is told how many frames it missed and goes on from the oldest one kept: the
//! writer never waits for a reader, so a slow page cannot slow the swarm.
//!
//! Positions, not event numbers, order the buffer: a swarm's event numbers may arrive out
//! of numeric order (two threads publishing at once), so a reconnecting client's
//! `Last-Event-ID` is looked up among the frames kept, not compared.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// One encoded SSE frame.
#[derive(Debug)]
pub(crate) struct Frame {
    /// The swarm event's number, if it is one (the SSE `id`).
    pub(crate) seq: Option<u64>,
    /// The bytes to write: `id:`, `event:`, `data:` lines and the blank line.
    pub(crate) bytes: bytes::Bytes,
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
        let end = {
            let mut inner = self.lock();
            if inner.frames.len() == self.capacity {
                inner.frames.pop_front();
                inner.first += 1;
            }
            inner.frames.push_back(Arc::new(frame));
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
        match oldest {
            // Evicted: everything kept is newer than what the client saw.
            Some(oldest) if last < oldest => (inner.first, oldest - last - 1),
            _ => (end, 0),
        }
    }

    /// Frames from `cursor` on, at most `max`; moves the cursor.
    pub(crate) fn read(&self, cursor: &mut u64, max: usize) -> Read {
        let inner = self.lock();
        if *cursor < inner.first {
            let missed = inner.first - *cursor;
            *cursor = inner.first;
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
        Frame {
            seq: Some(seq),
            bytes: bytes::Bytes::from(format!("id: {seq}\n\n")),
        }
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
        assert!(matches!(ring.read(&mut slow, 100), Read::Missed(6)));
        assert_eq!(seqs(ring.read(&mut slow, 2)), [7, 8]);
        assert_eq!(seqs(ring.read(&mut slow, 100)), [9, 10]);
        // Reconnecting with an evicted id: from the oldest kept, having missed 7..=6.
        let (mut cursor, missed) = ring.cursor_after(Some(2));
        assert_eq!(missed, 4);
        assert_eq!(seqs(ring.read(&mut cursor, 100)), [7, 8, 9, 10]);
        // A fresh reader gets the history kept; an id never held starts live.
        let (mut fresh, _) = ring.cursor_after(None);
        assert_eq!(seqs(ring.read(&mut fresh, 100)), [7, 8, 9, 10]);
        let (mut live, _) = ring.cursor_after(Some(99));
        assert!(matches!(ring.read(&mut live, 100), Read::Empty));
    }
}
