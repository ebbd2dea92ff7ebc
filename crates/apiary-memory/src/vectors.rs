//! Checking and normalising vectors, and the slab that keeps every stored vector exactly.

use std::collections::HashMap;

use crate::MemoryError;

/// Checks `v` (dimension, finite, non-zero) and scales it to unit length, so inner product
/// equals cosine similarity.
pub(crate) fn normalised(what: &str, mut v: Vec<f32>, dim: usize) -> Result<Vec<f32>, MemoryError> {
    if v.len() != dim {
        return Err(MemoryError::Dimension {
            what: what.to_owned(),
            expected: dim,
            got: v.len(),
        });
    }
    if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(MemoryError::NotFinite {
            what: what.to_owned(),
            index,
            value,
        });
    }
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return Err(MemoryError::ZeroVector {
            what: what.to_owned(),
        });
    }
    v.iter_mut()
        .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    Ok(v)
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Every stored vector in full precision, contiguous, by pattern id.
///
/// The index may hold only compressed codes; this slab is what training samples, exact
/// re-ranking, recall measurement and rebuilds read. Removal swaps the last row in.
#[derive(Debug)]
pub(crate) struct VectorSlab {
    dim: usize,
    data: Vec<f32>,
    ids: Vec<u64>,
    row_of: HashMap<u64, usize>,
}

impl VectorSlab {
    pub(crate) fn new(dim: usize) -> Self {
        Self {
            dim,
            data: Vec::new(),
            ids: Vec::new(),
            row_of: HashMap::new(),
        }
    }

    /// A slab of `ids` with their rows concatenated in `data`.
    pub(crate) fn from_parts(dim: usize, ids: Vec<u64>, data: Vec<f32>) -> Self {
        debug_assert_eq!(ids.len() * dim, data.len());
        let row_of = ids.iter().enumerate().map(|(row, &id)| (id, row)).collect();
        Self {
            dim,
            data,
            ids,
            row_of,
        }
    }

    pub(crate) fn insert(&mut self, id: u64, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        if let Some(&row) = self.row_of.get(&id) {
            self.data[row * self.dim..(row + 1) * self.dim].copy_from_slice(v);
            return;
        }
        self.row_of.insert(id, self.ids.len());
        self.ids.push(id);
        self.data.extend_from_slice(v);
    }

    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let Some(row) = self.row_of.remove(&id) else {
            return false;
        };
        let last = self.ids.len() - 1;
        if row != last {
            let moved = self.ids[last];
            self.ids[row] = moved;
            self.row_of.insert(moved, row);
            self.data
                .copy_within(last * self.dim..(last + 1) * self.dim, row * self.dim);
        }
        self.ids.pop();
        self.data.truncate(last * self.dim);
        true
    }

    pub(crate) fn get(&self, id: u64) -> Option<&[f32]> {
        let row = *self.row_of.get(&id)?;
        Some(&self.data[row * self.dim..(row + 1) * self.dim])
    }

    /// All ids and rows, for training and rebuilding.
    pub(crate) fn snapshot(&self) -> (Vec<u64>, Vec<f32>) {
        (self.ids.clone(), self.data.clone())
    }

    pub(crate) fn bytes(&self) -> usize {
        self.data.len() * 4 + self.ids.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_normalises() {
        assert!(matches!(
            normalised("q", vec![1.0; 3], 4),
            Err(MemoryError::Dimension {
                expected: 4,
                got: 3,
                ..
            })
        ));
        assert!(matches!(
            normalised("q", vec![1.0, f32::NAN], 2),
            Err(MemoryError::NotFinite { index: 1, .. })
        ));
        assert!(matches!(
            normalised("q", vec![0.0; 2], 2),
            Err(MemoryError::ZeroVector { .. })
        ));
        let v = normalised("q", vec![3.0, 4.0], 2).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
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
        assert_eq!(s.bytes(), 2 * (2 * 4 + 8));
    }
}
