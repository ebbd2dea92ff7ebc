//! The input checks every custom op of the encoder makes: f32, contiguous.

use candle_core::{CpuStorage, Layout};

/// The contiguous f32 elements `layout` views in `storage`, or an error naming the op.
pub(crate) fn f32_slice<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 inputs only");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: contiguous inputs only");
    };
    Ok(&data[start..end])
}
