//! erf and exp for the encoder's element-wise passes, in straight-line f32 code the compiler
//! vectorises (no branches, no library calls in the loop).
//!
//! Both are accurate far beyond what the agreement test needs (cosine >= 0.999 to the
//! reference): erf to 5.4e-7 absolute, exp to about 2e-7 relative plus `|v| * 6e-8`.

/// Abramowitz and Stegun 7.1.26, odd-extended; no branches, so loops over it vectorise.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp_nonpositive(-a * a);
    y.copysign(x)
}

/// `e^v` for `v <= 0` (-inf included), relative error about 2e-7 plus `|v| * 6e-8`: `2^n * 2^f`
/// with `n` the nearest integer to `v / ln 2` and a degree-6 polynomial for `2^f`,
/// `|f| <= 0.5`. Inputs below -87 count as -87: e^-87 is 1.6e-38, nothing next to any sum
/// or difference it joins here, and it keeps `2^n` a normal float.
#[inline(always)]
pub(crate) fn exp_nonpositive(v: f32) -> f32 {
    let t = v.max(-87.0) * std::f32::consts::LOG2_E;
    // Round to nearest by adding and removing 1.5 * 2^23: `f32::round` is a library call
    // without SSE4.1, and a call in the loop stops it from vectorising.
    const SHIFTER: f32 = 12_582_912.0;
    let shifted = t + SHIFTER;
    let n = shifted - SHIFTER;
    let f = (t - n) * std::f32::consts::LN_2;
    // Taylor series of e^f, |f| <= ln2 / 2: the first omitted term is below 1.2e-7.
    let p = 1.0
        + f * (1.0
            + f * (0.5 + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f / 720.0)))));
    // The shifted float's low mantissa bits hold n (two's complement), so 2^n's exponent
    // bits come from a bit cast, not from an `as i32`, whose saturation would not vectorise.
    // n is in [-126, 0], so 2^n is a normal float.
    let n_bits = shifted.to_bits().wrapping_sub(SHIFTER.to_bits());
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Maclaurin series in f64, exact to f32 precision for |x| <= 3.
    fn erf_reference(x: f64) -> f64 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_and_exp_are_accurate() {
        let mut worst: f64 = 0.0;
        for i in -3000..=3000 {
            let x = i as f64 / 1000.0;
            worst = worst.max((f64::from(erf(x as f32)) - erf_reference(x)).abs());
        }
        // 1.5e-7 from the approximation, the rest from computing it in f32.
        assert!(worst < 1e-6, "erf error {worst}");
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
        assert!(erf(0.0).abs() < 1e-6);
        for i in 0..=8700 {
            let v = -(i as f32) / 100.0;
            let rel = (f64::from(exp_nonpositive(v)) / f64::from(v).exp() - 1.0).abs();
            // Rounding v * log2(e) to f32 alone costs |v| * 6e-8 relative.
            assert!(
                rel < 1e-6 + f64::from(v.abs()) * 6e-8,
                "exp({v}) off by {rel}"
            );
        }
        assert_eq!(exp_nonpositive(-1000.0), exp_nonpositive(-87.0));
    }
}
