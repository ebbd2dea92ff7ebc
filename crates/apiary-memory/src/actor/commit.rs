//! How a write travels: checked and encoded by the actor, stored by the writer thread (in a
//! transaction shared with the writes that arrived meanwhile), then applied to RAM and
//! acknowledged by the actor, in the order the writes arrived.
//!
//! Between sending a write and applying it the actor goes on serving: reads see only what is
//! stored. A write that depends on the state (which pattern id a key has, whether a delete
//! finds its key) is computed against the state *after* the writes still in flight, tracked
//! in [`InFlight`].

use std::collections::HashMap;

use foldhash::fast::RandomState;

use apiary_metrics as m;

use super::{NewPatterns, Reply, State};
use crate::{kv::Entry, searchable::Searchable, store::Write, writer::Committed, MemoryError};

/// What the actor does with a write once its transaction has ended.
pub(crate) enum Then {
    Put {
        key: String,
        entry: Entry,
        reply: Reply<()>,
    },
    Delete {
        key: String,
        reply: Reply<bool>,
    },
    /// An expiry sweep: removes those of `keys` expired at `now`, as the store did.
    Expire {
        keys: Vec<String>,
        now: u64,
    },
    /// `patterns` get the ids `first_id..`, in order.
    AddPatterns {
        first_id: u64,
        patterns: NewPatterns,
        replaced: Vec<u64>,
        reply: Reply<()>,
    },
    RemovePattern {
        key: String,
        id: u64,
        reply: Reply<bool>,
    },
}

/// The writes sent and not yet applied, by the keys they touch.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    /// Key/value writes in flight per key.
    kv: HashMap<String, u32, RandomState>,
    /// Pattern writes in flight per key, and the id the key will have after them (`None`:
    /// removed).
    patterns: HashMap<String, (u32, Option<u64>), RandomState>,
    /// An expiry sweep is in flight: the next is scheduled once it is applied.
    pub(super) expiring: bool,
}

impl InFlight {
    fn touch_key(&mut self, key: &str) {
        *self.kv.entry(key.to_owned()).or_default() += 1;
    }

    fn done_key(&mut self, key: &str) {
        if let Some(n) = self.kv.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.kv.remove(key);
            }
        }
    }

    fn touch_pattern(&mut self, key: &str, id: Option<u64>) {
        let entry = self.patterns.entry(key.to_owned()).or_insert((0, None));
        *entry = (entry.0 + 1, id);
    }

    fn done_pattern(&mut self, key: &str) {
        if let Some((n, _)) = self.patterns.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.patterns.remove(key);
            }
        }
    }
}

impl State {
    /// The id `key` will have once the writes in flight are applied.
    fn pattern_id(&self, key: &str) -> Option<u64> {
        self.pattern_id_in(&self.shared.read(), key)
    }

    /// [`pattern_id`](Self::pattern_id) with the shared state already read.
    fn pattern_id_in(&self, shared: &Searchable, key: &str) -> Option<u64> {
        match self.in_flight.patterns.get(key) {
            Some(&(_, id)) => id,
            None => shared.patterns.id_of(key),
        }
    }

    /// Whether `key` may be present once the writes in flight are applied.
    pub(super) fn may_have_key(&self, key: &str, now: u64) -> bool {
        self.kv.get(key, now).is_some() || self.in_flight.kv.contains_key(key)
    }

    pub(super) fn put(&mut self, key: String, entry: Entry, reply: Reply<()>) {
        match Write::encode_entry(&key, &entry) {
            Ok(bytes) => {
                self.in_flight.touch_key(&key);
                let write = Write::Put {
                    key: key.clone(),
                    bytes,
                };
                self.submit(write, Then::Put { key, entry, reply });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    pub(super) fn delete(&mut self, key: String, reply: Reply<bool>) {
        self.in_flight.touch_key(&key);
        self.submit(Write::Delete(key.clone()), Then::Delete { key, reply });
    }

    pub(super) fn expire(&mut self, keys: Vec<String>, now: u64) {
        self.in_flight.expiring = true;
        let write = Write::Expire {
            keys: keys.clone(),
            now,
        };
        self.submit(write, Then::Expire { keys, now });
    }

    /// Stores `patterns` (later entries for the same key win; an existing key is replaced).
    pub(super) fn add_patterns(&mut self, mut patterns: NewPatterns, reply: Reply<()>) {
        if patterns.infos.is_empty() {
            let _ = reply.send(Ok(()));
            return;
        }
        keep_last_of_each_key(&mut patterns);
        // One read lock for the batch, not one per key.
        let (replaced, first_id) = {
            let s = self.shared.read();
            let replaced: Vec<u64> = patterns
                .infos
                .iter()
                .filter_map(|info| self.pattern_id_in(&s, &info.key))
                .collect();
            (replaced, s.patterns.next_id)
        };
        // Encoded for the store only: an in-RAM memory has nothing to write.
        let encoded = if self.writer.is_some() {
            patterns
                .infos
                .iter()
                .zip(&patterns.vectors)
                .zip(first_id..)
                .map(|((info, v), id)| Write::encode_pattern(info, v).map(|bytes| (id, bytes)))
                .collect::<Result<Vec<_>, _>>()
        } else {
            Ok(Vec::new())
        };
        let add = match encoded {
            Ok(add) => add,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        // Ids are taken now, so that writes in flight never share one.
        self.shared.write().patterns.next_id = first_id + patterns.infos.len() as u64;
        // An in-RAM memory applies the write before anything else runs: nothing is in flight.
        if self.writer.is_some() {
            for (info, id) in patterns.infos.iter().zip(first_id..) {
                self.in_flight.touch_pattern(&info.key, Some(id));
            }
        }
        let write = Write::Patterns {
            add,
            remove: replaced.clone(),
        };
        self.submit(
            write,
            Then::AddPatterns {
                first_id,
                patterns,
                replaced,
                reply,
            },
        );
    }

    pub(super) fn remove_pattern(&mut self, key: String, reply: Reply<bool>) {
        let Some(id) = self.pattern_id(&key) else {
            let _ = reply.send(Ok(false));
            return;
        };
        self.in_flight.touch_pattern(&key, None);
        let write = Write::Patterns {
            add: Vec::new(),
            remove: vec![id],
        };
        self.submit(write, Then::RemovePattern { key, id, reply });
    }

    /// Sends `write` to the writer; without a store it is applied at once.
    fn submit(&mut self, write: Write, then: Then) {
        let Some(writer) = &self.writer else {
            let generation = self.generation + u64::from(matches!(write, Write::Patterns { .. }));
            self.apply(then, Ok(generation));
            return;
        };
        if let Err(then) = writer.send(write, then) {
            let error = MemoryError::WriteFailed {
                path: self.store_path(),
                reason: "the writer thread has stopped".to_owned(),
            };
            self.apply(then, Err(error));
        }
    }

    /// Applies what the writer has stored so far, in order.
    pub(super) fn apply_committed(&mut self) {
        let done: Vec<Committed<Then>> = match &self.writer {
            Some(writer) => writer.committed().collect(),
            None => Vec::new(),
        };
        for Committed { then, result } in done {
            self.apply(then, result);
        }
    }

    /// Applies one write whose transaction has ended (`generation`: the pattern generation
    /// after it) and acknowledges it.
    pub(super) fn apply(&mut self, then: Then, stored: Result<u64, MemoryError>) {
        let generation = stored.as_ref().ok().copied();
        if let Some(g) = generation {
            self.generation = g;
        }
        match then {
            Then::Put { key, entry, reply } => {
                self.in_flight.done_key(&key);
                let result = stored.map(|_| {
                    self.note_namespace(&key);
                    self.kv.insert(key, entry);
                    metrics::counter!(m::MEMORY_WRITES_TOTAL.name, "op" => "put").increment(1);
                });
                let _ = reply.send(result);
            }
            Then::Delete { key, reply } => {
                self.in_flight.done_key(&key);
                let result = stored.map(|_| {
                    let present = self.kv.get(&key, self.clock.now_ms()).is_some();
                    self.kv.remove(&key);
                    if present {
                        metrics::counter!(m::MEMORY_WRITES_TOTAL.name, "op" => "delete")
                            .increment(1);
                    }
                    present
                });
                let _ = reply.send(result);
            }
            Then::Expire { keys, now } => {
                self.in_flight.expiring = false;
                match stored {
                    Ok(_) => {
                        let expired = self.kv.remove_expired(&keys, now);
                        metrics::counter!(m::MEMORY_EXPIRED_TOTAL.name).increment(expired as u64);
                    }
                    // The keys stay (still never returned) and the next sweep retries.
                    Err(e) => {
                        tracing::warn!(error = %e, "memory: expiry sweep failed; retrying at the next one")
                    }
                }
            }
            Then::AddPatterns {
                first_id,
                patterns,
                replaced,
                reply,
            } => {
                if !self.in_flight.patterns.is_empty() {
                    for info in &patterns.infos {
                        self.in_flight.done_pattern(&info.key);
                    }
                }
                let result = match generation {
                    Some(g) => self.apply_patterns(first_id, patterns, &replaced, g),
                    None => stored.map(|_| ()),
                };
                let _ = reply.send(result);
            }
            Then::RemovePattern { key, id, reply } => {
                self.in_flight.done_pattern(&key);
                let shared = self.shared.clone();
                let mut s = shared.write();
                let result = match generation {
                    Some(g) if s.patterns.contains(id) => {
                        self.drop_patterns(&mut s, &[id], g).map(|()| {
                            metrics::counter!(m::MEMORY_WRITES_TOTAL.name, "op" => "remove_pattern")
                                .increment(1);
                            true
                        })
                    }
                    Some(_) => Ok(false),
                    None => stored.map(|_| false),
                };
                let _ = reply.send(result);
            }
        }
    }

    fn apply_patterns(
        &mut self,
        first_id: u64,
        patterns: NewPatterns,
        replaced: &[u64],
        generation: u64,
    ) -> Result<(), MemoryError> {
        let NewPatterns { infos, vectors } = patterns;
        let ids: Vec<u64> = (first_id..first_id + infos.len() as u64).collect();
        let shared = self.shared.clone();
        let mut s = shared.write();
        let replaced: Vec<u64> = replaced
            .iter()
            .copied()
            .filter(|&id| s.patterns.contains(id))
            .collect();
        self.drop_patterns(&mut s, &replaced, generation)?;
        // The keys first: in RAM nothing runs between the key checks and here, so the
        // buckets they probed are still in cache; the rows (1.5 kB each) would push them
        // out. In the insert bench the table took 0.21-0.24 ms a batch of 1,000 this way,
        // 0.25-0.39 ms after the rows.
        s.patterns.reserve(infos.len());
        for (info, &id) in infos.into_iter().zip(&ids) {
            s.note_namespace(&info.key);
            s.patterns.insert(id, info);
        }
        let Searchable {
            vectors: slab,
            index,
            ..
        } = &mut *s;
        let kept = slab.insert_batch(&ids, &vectors);
        if generation > self.index_covers {
            // The batch as the slab now holds it, contiguous; concatenated only when the slab
            // does not hold it so (compact mode).
            match kept {
                Some(batch) => index.add(&ids, batch)?,
                None => index.add(&ids, &vectors.concat())?,
            }
        }
        drop(s);
        if let Some(t) = &mut self.training
            && generation > t.since
        {
            t.added.extend_from_slice(&ids);
        }
        metrics::counter!(m::MEMORY_WRITES_TOTAL.name, "op" => "add_patterns").increment(1);
        Ok(())
    }

    /// Takes removed ids out of the table, the vectors and the index (indexes that cannot
    /// remove keep them; searches skip ids no longer in the table). `generation` is the
    /// write's: an index or a training that already reflects it is left alone.
    pub(super) fn drop_patterns(
        &mut self,
        s: &mut Searchable,
        ids: &[u64],
        generation: u64,
    ) -> Result<(), MemoryError> {
        if ids.is_empty() {
            return Ok(());
        }
        for &id in ids {
            s.patterns.remove_id(id);
            s.vectors.remove(id);
        }
        if generation > self.index_covers && !s.index.remove(ids)? {
            s.dead_in_index += ids.len();
        }
        if let Some(t) = &mut self.training
            && generation > t.since
        {
            t.removed.extend_from_slice(ids);
        }
        Ok(())
    }
}

/// Drops all but the last pattern of each key in the batch (the last one wins, as if the
/// patterns had been added one by one), with their rows.
fn keep_last_of_each_key(patterns: &mut NewPatterns) {
    let mut last: HashMap<&str, usize, RandomState> =
        HashMap::with_capacity_and_hasher(patterns.infos.len(), RandomState::default());
    for (i, info) in patterns.infos.iter().enumerate() {
        last.insert(&info.key, i);
    }
    if last.len() == patterns.infos.len() {
        return;
    }
    let keep: Vec<bool> = patterns
        .infos
        .iter()
        .enumerate()
        .map(|(i, info)| last[info.key.as_str()] == i)
        .collect();
    drop(last);
    let mut at = 0;
    patterns.vectors.retain(|_| {
        at += 1;
        keep[at - 1]
    });
    let mut at = 0;
    patterns.infos.retain(|_| {
        at += 1;
        keep[at - 1]
    });
}

#[cfg(test)]
mod tests;
