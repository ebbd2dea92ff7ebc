//! Checking and normalising vectors, and the slab that keeps every stored vector exactly.

use crate::positions::Positions;
use crate::MemoryError;

/// Checks `v` (dimension, finite, non-zero) and scales it to unit length, so inner product
/// equals cosine similarity. `what` names the vector in errors, formatted only for one.
pub(crate) fn normalised(
    what: &dyn std::fmt::Display,
    mut v: Vec<f32>,
    dim: usize,
) -> Result<Vec<f32>, MemoryError> {
    let scale = inverse_norm(what, &v, dim)?;
    // One loop per kind of scale, so the common one vectorises.
    match scale {
        Scale::Single(s) => v.iter_mut().for_each(|x| *x *= s),
        Scale::Double(s) => v.iter_mut().for_each(|x| *x = (f64::from(*x) * s) as f32),
    }
    Ok(v)
}

/// How a component is scaled: in `f32` when the norm was found in `f32` (the common case,
/// which vectorises), in `f64` otherwise.
#[derive(Clone, Copy)]
enum Scale {
    Single(f32),
    Double(f64),
}

/// 1 / |v|, once `v` is checked.
fn inverse_norm(what: &dyn std::fmt::Display, v: &[f32], dim: usize) -> Result<Scale, MemoryError> {
    if v.len() != dim {
        return Err(MemoryError::Dimension {
            what: what.to_string(),
            expected: dim,
            got: v.len(),
        });
    }
    // First in f32, eight sums at once (one running sum is a chain of dependent adds; in f64
    // the conversions kept it from vectorising, and normalising cost 2% of an insert). A sum
    // that is not a normal positive number (a component not finite, squares overflowing or
    // all underflowing) is redone in f64, which no finite f32 overflows, and checked there.
    const LANES: usize = 8;
    let chunks = v.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    let mut lanes = [0f32; LANES];
    for c in chunks {
        for i in 0..LANES {
            lanes[i] += c[i] * c[i];
        }
    }
    let sum = lanes.iter().sum::<f32>() + tail;
    if sum.is_normal() {
        return Ok(Scale::Single(1.0 / sum.sqrt()));
    }
    if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(MemoryError::NotFinite {
            what: what.to_string(),
            index,
            value,
        });
    }
    let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 {
        return Err(MemoryError::ZeroVector {
            what: what.to_string(),
        });
    }
    Ok(Scale::Double(1.0 / norm))
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums: a single running sum is one long chain of dependent adds the
    // compiler may not reorder, which made re-scoring 40 candidates cost ~20 us; eight lanes
    // let it use SIMD registers and hide the add latency.
    const LANES: usize = 8;
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut lanes = [0f32; LANES];
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `q` against up to four rows at once (more are scored as [`dot`]), in eight lanes each.
pub(crate) fn dot_many(q: &[f32], rows: &[&[f32]]) -> [f32; 4] {
    const LANES: usize = 8;
    let mut out = [0f32; 4];
    if rows.len() != 4 || rows.iter().any(|r| r.len() != q.len()) || !q.len().is_multiple_of(LANES)
    {
        for (o, r) in out.iter_mut().zip(rows) {
            *o = dot(q, r);
        }
        return out;
    }
    let mut lanes = [[0f32; LANES]; 4];
    for (c, qc) in q.chunks_exact(LANES).enumerate() {
        let at = c * LANES;
        for (lane, row) in lanes.iter_mut().zip(rows) {
            let rc = &row[at..at + LANES];
            for i in 0..LANES {
                lane[i] += qc[i] * rc[i];
            }
        }
    }
    for (o, lane) in out.iter_mut().zip(&lanes) {
        *o = lane.iter().sum();
    }
    out
}

/// Every stored vector in full precision, contiguous, by pattern id.
///
/// The index may hold only compressed codes; this slab is what training samples, exact
/// re-ranking, recall measurement and rebuilds read. Removal swaps the last row in.
#[derive(Debug)]
pub(crate) struct VectorSlab {
    dim: usize,
    data: Vec<f32>,
    /// The id of each row, and each id's row.
    rows: Positions,
}

impl VectorSlab {
    pub(crate) fn new(dim: usize) -> Self {
        Self {
            dim,
            data: Vec::new(),
            rows: Positions::default(),
        }
    }

    /// A slab of `ids` with their rows concatenated in `data`.
    pub(crate) fn from_parts(dim: usize, ids: Vec<u64>, data: Vec<f32>) -> Self {
        debug_assert_eq!(ids.len() * dim, data.len());
        Self {
            dim,
            data,
            rows: Positions::from_ids(ids),
        }
    }

    /// Room for `more` rows, so that a batch grows the slab at most once.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.rows.reserve(more);
        self.data.reserve(more * self.dim);
    }

    /// Stores a batch's rows (row `i` is `ids[i]`'s) and returns them as the slab now holds
    /// them, concatenated in order, when every id was new (the batch's rows then make up
    /// the slab's end): the index can take the batch from there without another copy.
    pub(crate) fn insert_batch(&mut self, ids: &[u64], rows: &[Vec<f32>]) -> Option<&[f32]> {
        debug_assert_eq!(ids.len(), rows.len());
        self.reserve(ids.len());
        let first_row = self.rows.len();
        let mut appended = true;
        for (&id, row) in ids.iter().zip(rows) {
            appended &= self.insert(id, row);
        }
        appended.then(|| &self.data[first_row * self.dim..])
    }

    /// Stores `v` as `id`'s row; returns whether it was appended (false: it replaced the
    /// row `id` had).
    pub(crate) fn insert(&mut self, id: u64, v: &[f32]) -> bool {
        debug_assert_eq!(v.len(), self.dim);
        if let Some(row) = self.rows.get(id) {
            self.data[row * self.dim..(row + 1) * self.dim].copy_from_slice(v);
            return false;
        }
        self.rows.push(id);
        self.data.extend_from_slice(v);
        true
    }

    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let Some(row) = self.rows.swap_remove(id) else {
            return false;
        };
        // The last row moves into the gap, as its id did.
        let last = self.rows.len();
        if row != last {
            self.data
                .copy_within(last * self.dim..(last + 1) * self.dim, row * self.dim);
        }
        self.data.truncate(last * self.dim);
        true
    }

    pub(crate) fn get(&self, id: u64) -> Option<&[f32]> {
        let row = self.rows.get(id)?;
        Some(&self.data[row * self.dim..(row + 1) * self.dim])
    }

    /// All ids and rows, for training and rebuilding.
    pub(crate) fn snapshot(&self) -> (Vec<u64>, Vec<f32>) {
        (self.rows.ids().to_vec(), self.data.clone())
    }

    pub(crate) fn bytes(&self) -> usize {
        self.data.len() * 4 + self.rows.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_normalises() {
        assert!(matches!(
            normalised(&"q", vec![1.0; 3], 4),
            Err(MemoryError::Dimension {
                expected: 4,
                got: 3,
                ..
            })
        ));
        assert!(matches!(
            normalised(&"q", vec![1.0, f32::NAN], 2),
            Err(MemoryError::NotFinite { index: 1, .. })
        ));
        assert!(matches!(
            normalised(&"q", vec![0.0; 2], 2),
            Err(MemoryError::ZeroVector { .. })
        ));
        assert_eq!(normalised(&"q", vec![0.0, 2.0], 2).unwrap(), [0.0, 1.0]);
        let v = normalised(&"q", vec![3.0, 4.0], 2).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        // Squares that overflow f32, or underflow it, still give a unit vector (in f64).
        for x in [3e30f32, 1e-30, f32::MAX, f32::MIN_POSITIVE] {
            let v = normalised(&"q", vec![x, -x, 0.0, x], 4).unwrap();
            let norm: f64 = v.iter().map(|c| f64::from(*c).powi(2)).sum();
            assert!((norm - 1.0).abs() < 1e-6, "{x}: {v:?}");
        }
        assert!(matches!(
            normalised(&"q", vec![1.0, f32::INFINITY, 1.0], 3),
            Err(MemoryError::NotFinite { index: 1, .. })
        ));
    }

    #[test]
    fn dot_matches_a_plain_sum_at_every_length() {
        for len in [0, 1, 7, 8, 9, 384, 385] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
            assert!((f64::from(dot(&a, &b)) - plain).abs() < 1e-4, "{len}");
        }
    }

    #[test]
    fn dot_many_matches_dot() {
        let q: Vec<f32> = (0..384).map(|i| (i as f32 * 0.3).sin()).collect();
        let rows: Vec<Vec<f32>> = (0..4)
            .map(|r| {
                (0..384)
                    .map(|i| ((i * (r + 2)) as f32 * 0.07).cos())
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        for take in 1..=4 {
            let got = dot_many(&q, &refs[..take]);
            for (g, r) in got.iter().zip(&refs[..take]) {
                assert!((g - dot(&q, r)).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn slab_swap_remove_keeps_rows() {
        let mut s = VectorSlab::new(2);
        s.insert(1, &[1.0, 0.0]);
        s.insert(2, &[0.0, 1.0]);
        s.insert(3, &[0.5, 0.5]);
        assert!(s.remove(1));
        assert!(!s.remove(1));
        assert_eq!(s.get(3), Some(&[0.5, 0.5][..]));
        assert_eq!(s.get(2), Some(&[0.0, 1.0][..]));
        // Two rows of two floats with their ids, and the dense array's slots for ids 0-3.
        assert_eq!(s.bytes(), 2 * (2 * 4 + 8) + 4 * 4);
    }

    #[test]
    fn a_batch_of_new_ids_is_handed_back_as_the_slab_holds_it() {
        let mut s = VectorSlab::new(2);
        s.insert(7, &[9.0, 9.0]);
        let rows = vec![vec![1.0, 2.0], vec![3.0, 4.0]];
        assert_eq!(
            s.insert_batch(&[1, 2], &rows),
            Some(&[1.0, 2.0, 3.0, 4.0][..])
        );
        // An id the slab holds is overwritten in place: the batch is not at the slab's end.
        let again = vec![vec![5.0, 6.0], vec![0.0, 1.0]];
        assert_eq!(s.insert_batch(&[3, 7], &again), None);
        assert_eq!(s.get(3), Some(&[5.0, 6.0][..]));
        assert_eq!(s.get(7), Some(&[0.0, 1.0][..]));
        assert_eq!(s.get(1), Some(&[1.0, 2.0][..]));
    }
}
