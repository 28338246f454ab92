//! Drift statistics (SPEC §7): pure functions over plain data, no state, no I/O.
//!
//! Each function reproduces a numpy/scipy reference implementation named in its doc comment.
//! `tests/stats_fixtures.rs` checks every one of them against fixtures written by
//! `tests/fixtures/stats/generate.py` (pinned numpy/scipy): bin edges and bin counts are
//! bit-identical, every other statistic agrees to 1e-9 relative (p-values below 1e-300 only need
//! to be below 1e-290 on both sides).
//!
//! Guarantees:
//! - No function panics, whatever the input (empty slices, NaN, ±Inf, mismatched lengths).
//!   Results for inputs scipy rejects (empty samples, zero-sum histograms) are defined on each
//!   function and are "no drift" values (0 for distances, 1 for p-values).
//! - Functions over raw samples (`bin_edges`, `ks_2samp`, `wasserstein*`, `mean`, `std_ddof0`,
//!   `median`, `mad`, `mean_abs_deviation`) ignore non-finite values: SPEC §7 counts NaN and ±Inf
//!   as missing, and the caller puts them in the `missing` bin before computing these.
//! - Functions over fractions or counts (`psi`, `js_distance`, `chi2_contingency_p`) expect finite,
//!   non-negative numbers; a NaN there makes the result NaN rather than a panic.
//! - Sums that can cancel or run over many terms are compensated (Neumaier), so results do not
//!   depend on the order numpy happens to sum in.

use std::f64::consts::{LN_2, PI};

/// Replacement for a zero bin fraction in [`psi`] (SPEC §7), so that `ln(q/p)` stays finite.
pub const ZERO_FRACTION: f64 = 1e-4;

/// Lower bound on the reference standard deviation that [`wasserstein_normalized`] divides by,
/// so a constant reference column does not turn any movement into an infinite distance.
pub const MIN_WASSERSTEIN_SCALE: f64 = 1e-3;

/// `0.6745` ≈ Φ⁻¹(0.75): makes the MAD-based z-score comparable to a normal z-score.
pub const MAD_Z_FACTOR: f64 = 0.6745;

/// `1.253314` ≈ √(π/2): the ratio of standard deviation to mean absolute deviation for a normal
/// distribution, used when the MAD is zero.
pub const MEAN_ABS_DEV_Z_FACTOR: f64 = 1.253314;

/// Quantile of already sorted, finite values with numpy's default `"linear"` method
/// (`np.quantile(values, q)`, method 7 of Hyndman & Fan).
///
/// With `n = sorted.len()`, the virtual index is `h = (n − 1)·q`; for `h ≥ n − 1` the result is the
/// last value, otherwise with `i = ⌊h⌋`, `t = h − i`, `a = sorted[i]`, `b = sorted[i + 1]` it is
/// numpy's `_lerp`: `a + (b − a)·t` when `t < 0.5` and `b − (b − a)·(1 − t)` otherwise. Evaluating
/// the same operations in the same order makes the result bit-identical to numpy's.
///
/// `q` is clamped to `[0, 1]`. Returns NaN for an empty slice or a NaN `q`. The slice must be
/// sorted ascending; an unsorted slice gives a meaningless value but no panic.
pub fn quantile_linear(sorted: &[f64], q: f64) -> f64 {
    let Some(&last) = sorted.last() else {
        return f64::NAN;
    };
    if q.is_nan() {
        return f64::NAN;
    }
    let last_index = sorted.len() - 1;
    let virtual_index = last_index as f64 * q.clamp(0.0, 1.0);
    if virtual_index >= last_index as f64 {
        return last;
    }
    let below = virtual_index.floor();
    // `below < last_index` here, so both indices are in bounds; `get` keeps that a non-panic.
    let lower_index = below as usize;
    let (Some(&lower), Some(&upper)) = (sorted.get(lower_index), sorted.get(lower_index + 1))
    else {
        return last;
    };
    let weight = virtual_index - below;
    let difference = upper - lower;
    if weight >= 0.5 {
        upper - difference * (1.0 - weight)
    } else {
        lower + difference * weight
    }
}

/// Inner bin edges of a numeric column (SPEC §7 "Bins"): the reference quantiles at `i/bins` for
/// `i = 1..bins`, numpy linear method, deduplicated and sorted —
/// `np.unique(np.quantile(finite_reference, np.arange(1, bins) / bins))`.
///
/// Yields at most `bins − 1` edges, hence at most `bins` value bins (see [`bin_index`]); a column
/// with few distinct values gets fewer (a constant column gets one edge). Non-finite reference
/// values are ignored. Returns no edges (one bin holding every finite value) when `bins < 2` or
/// the reference has no finite value.
pub fn bin_edges(reference: &[f64], bins: usize) -> Vec<f64> {
    let sorted = finite_sorted(reference);
    if sorted.is_empty() || bins < 2 {
        return Vec::new();
    }
    let mut edges: Vec<f64> = Vec::new();
    for i in 1..bins {
        let edge = quantile_linear(&sorted, i as f64 / bins as f64);
        // Consecutive duplicates are dropped early so a large `bins` over few distinct values
        // stays small; the sort below catches the one-ulp non-monotonicity `_lerp` can produce.
        if edges.last() != Some(&edge) {
            edges.push(edge);
        }
    }
    edges.sort_unstable_by(f64::total_cmp);
    edges.dedup();
    edges
}

/// Index of the value bin holding `x`, for edges from [`bin_edges`].
///
/// Bins are right-closed with open ends: index 0 is `(−∞, e₀]`, index `i` is `(eᵢ₋₁, eᵢ]`, and the
/// last index, `edges.len()`, is `(e_last, +∞)`. Equivalently the number of edges strictly below
/// `x` (`np.searchsorted(edges, x, side="left")`). So there are `edges.len() + 1` value bins.
///
/// The `missing` bin (absent, null, NaN, ±Inf) is the caller's: it must route those values there
/// before calling. If it does not, −Inf lands in bin 0, +Inf in the last bin, and NaN in bin 0.
pub fn bin_index(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|&edge| edge < x)
}

/// Bin fractions `countᵢ / Σ count` (`counts / counts.sum()`); all zeros when the total is zero.
pub fn fractions(counts: &[u64]) -> Vec<f64> {
    let total: u128 = counts.iter().map(|&count| u128::from(count)).sum();
    if total == 0 {
        return vec![0.0; counts.len()];
    }
    let total = total as f64;
    counts.iter().map(|&count| count as f64 / total).collect()
}

/// Population stability index (SPEC §7): `Σᵢ (qᵢ − pᵢ)·ln(qᵢ / pᵢ)` with `p` the reference bin
/// fractions and `q` the window bin fractions, each fraction that is exactly zero replaced by
/// [`ZERO_FRACTION`], no renormalisation afterwards.
///
/// Reference implementation (numpy):
/// `p = np.where(p == 0, 1e-4, p); q = np.where(q == 0, 1e-4, q); np.sum((q - p) * np.log(q / p))`.
///
/// Slices are paired by bin index; a bin present in only one slice counts as a zero fraction in the
/// other. Empty input gives 0. Every term is non-negative for non-negative fractions.
pub fn psi(reference: &[f64], window: &[f64]) -> f64 {
    compensated_sum(
        paired(reference, window).map(|(reference_fraction, window_fraction)| {
            let p = nonzero_fraction(reference_fraction);
            let q = nonzero_fraction(window_fraction);
            (q - p) * (q / p).ln()
        }),
    )
}

/// Jensen–Shannon distance in bits (SPEC §7), `scipy.spatial.distance.jensenshannon(p, q, base=2)`.
///
/// `p` and `q` are first normalised to sum 1; with `m = (p + q)/2`,
/// `JS = sqrt((Σ rel_entr(pᵢ, mᵢ) + Σ rel_entr(qᵢ, mᵢ)) / ln 2 / 2)` where
/// `rel_entr(x, y) = x·ln(x/y)` for `x, y > 0`, `0` for `x = 0`. The result is in `[0, 1]`.
///
/// Slices are paired by bin index (a missing entry is 0). Where scipy returns NaN because `p` or
/// `q` sums to zero (including empty input) this returns 0. A rounding-level negative sum is
/// clamped to 0 before the square root (scipy would return NaN there).
pub fn js_distance(reference: &[f64], window: &[f64]) -> f64 {
    let reference_total = compensated_sum(reference.iter().copied());
    let window_total = compensated_sum(window.iter().copied());
    if reference_total.is_nan() || window_total.is_nan() {
        return f64::NAN;
    }
    if reference_total <= 0.0 || window_total <= 0.0 {
        return 0.0;
    }
    let mut left = Vec::with_capacity(reference.len().max(window.len()));
    let mut right = Vec::with_capacity(left.capacity());
    for (reference_weight, window_weight) in paired(reference, window) {
        let p = reference_weight / reference_total;
        let q = window_weight / window_total;
        let m = (p + q) / 2.0;
        left.push(relative_entropy(p, m));
        right.push(relative_entropy(q, m));
    }
    let divergence = (compensated_sum(left) + compensated_sum(right)) / LN_2;
    (divergence / 2.0).max(0.0).sqrt()
}

/// Two-sample Kolmogorov–Smirnov test as SPEC §7 defines it; returns `(ks_d, ks_p)`.
///
/// `ks_d = supₓ |F_reference(x) − F_window(x)|` over the empirical CDFs, evaluated exactly at every
/// sample value, ties included — `scipy.stats.ks_2samp(reference, window).statistic`
/// (two-sided). `ks_p = kstwobign_sf(ks_d·sqrt(n·m/(n + m)))` — the asymptotic Kolmogorov p-value,
/// `scipy.stats.kstwobign.sf(...)`, deliberately *not* `ks_2samp`'s own (exact for small
/// samples) p-value.
///
/// Non-finite values are ignored. If either sample has no finite value (scipy raises) the result
/// is `(0.0, 1.0)`.
pub fn ks_2samp(reference: &[f64], window: &[f64]) -> (f64, f64) {
    let reference = finite_sorted(reference);
    let window = finite_sorted(window);
    if reference.is_empty() || window.is_empty() {
        return (0.0, 1.0);
    }
    let reference_size = reference.len() as f64;
    let window_size = window.len() as f64;
    let mut statistic: f64 = 0.0;
    for (reference_cdf, window_cdf, _, _) in CdfSteps::new(&reference, &window) {
        statistic = statistic.max((reference_cdf - window_cdf).abs());
    }
    let effective_size = (reference_size * window_size / (reference_size + window_size)).sqrt();
    (statistic, kstwobign_sf(statistic * effective_size))
}

/// Survival function of the Kolmogorov distribution (the limit of `sqrt(n)·Dₙ`),
/// `scipy.stats.kstwobign.sf(x)` (= `scipy.special.kolmogorov(x)`).
///
/// For `x > 0.82`: `2·Σₖ₌₁ (−1)ᵏ⁻¹·exp(−2k²x²)`, which is accurate in relative terms down to
/// underflow. For `x ≤ 0.82`: `1 − (√(2π)/x)·Σₖ₌₁ exp(−(2k−1)²π²/(8x²))` (the theta-function form
/// of the CDF, which converges fast there; the CDF is below 0.5 so the subtraction loses nothing).
/// This is the split used by scipy's `_kolmogorov`. Returns 1 for `x ≤ 0`, NaN for NaN.
pub fn kstwobign_sf(x: f64) -> f64 {
    const CUTOVER: f64 = 0.82;
    const MAX_TERMS: u32 = 64;
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x <= CUTOVER {
        let exponent_scale = -PI * PI / (8.0 * x * x);
        let mut sum = 0.0;
        for k in 1..=MAX_TERMS {
            let odd = f64::from(2 * k - 1);
            let term = (exponent_scale * odd * odd).exp();
            sum += term;
            if term <= sum * f64::EPSILON * 0.5 {
                break;
            }
        }
        let cdf = (2.0 * PI).sqrt() / x * sum;
        (1.0 - cdf).clamp(0.0, 1.0)
    } else {
        let mut sum = 0.0;
        let mut sign = 1.0;
        for k in 1..=MAX_TERMS {
            let k = f64::from(k);
            let term = (-2.0 * k * k * x * x).exp();
            sum += sign * term;
            if term <= sum.abs() * f64::EPSILON * 0.5 {
                break;
            }
            sign = -sign;
        }
        (2.0 * sum).clamp(0.0, 1.0)
    }
}

/// First Wasserstein (earth mover's) distance between two 1-D samples,
/// `scipy.stats.wasserstein_distance(reference, window)` (unweighted).
///
/// `W₁ = ∫ |F_reference(x) − F_window(x)| dx`, computed exactly as a sum over the sorted union of
/// both samples: `Σ |F_r(xⱼ) − F_w(xⱼ)|·(xⱼ₊₁ − xⱼ)` (scipy's `_cdf_distance` with `p = 1`), with a
/// compensated sum.
///
/// Non-finite values are ignored. If either sample has no finite value (scipy raises) the result
/// is 0.
pub fn wasserstein(reference: &[f64], window: &[f64]) -> f64 {
    let reference = finite_sorted(reference);
    let window = finite_sorted(window);
    if reference.is_empty() || window.is_empty() {
        return 0.0;
    }
    compensated_sum(CdfSteps::new(&reference, &window).filter_map(
        |(reference_cdf, window_cdf, value, next_value)| {
            next_value.map(|next| (reference_cdf - window_cdf).abs() * (next - value))
        },
    ))
}

/// The drift engine's `wasserstein` (SPEC §7):
/// `wasserstein(reference, window) / max(std_ddof0(reference), 1e-3)`, i.e.
/// `scipy.stats.wasserstein_distance(ref, cur) / max(np.std(ref), 1e-3)`, so the distance is in
/// units of the reference spread.
///
/// Non-finite values are ignored; 0 when either sample has no finite value.
pub fn wasserstein_normalized(reference: &[f64], window: &[f64]) -> f64 {
    // `f64::max` ignores a NaN std (empty reference), leaving the floor.
    wasserstein(reference, window) / std_ddof0(reference).max(MIN_WASSERSTEIN_SCALE)
}

/// Chi-square test of homogeneity between the reference and window category counts (SPEC §7
/// `chi2_p`): the p-value of
/// `scipy.stats.chi2_contingency([reference_counts, window_counts], correction=False)`, over the
/// categories whose total count is non-zero.
///
/// With row sums `R`, `W`, column totals `cⱼ`, `N = R + W`: expected `Eᵣⱼ = rowᵣ·cⱼ/N`,
/// `X² = Σ (Oᵣⱼ − Eᵣⱼ)²/Eᵣⱼ`, and `p = chi2_sf(X², k − 1)` for `k` retained categories.
///
/// Slices are paired by category index (a missing entry is 0). Defined values where scipy has
/// none: when either row sums to zero (scipy raises on the zero expected frequencies) or no
/// category has a non-zero total (scipy raises) the result is 1.0. With a single retained category
/// `dof = 0` and scipy itself returns 1.0. Negative or NaN counts give NaN.
pub fn chi2_contingency_p(reference_counts: &[f64], window_counts: &[f64]) -> f64 {
    let mut columns = Vec::new();
    for (reference_count, window_count) in paired(reference_counts, window_counts) {
        if !(reference_count >= 0.0 && window_count >= 0.0) {
            return f64::NAN;
        }
        if reference_count + window_count > 0.0 {
            columns.push((reference_count, window_count));
        }
    }
    let reference_total = compensated_sum(columns.iter().map(|&(count, _)| count));
    let window_total = compensated_sum(columns.iter().map(|&(_, count)| count));
    if columns.len() < 2 || reference_total <= 0.0 || window_total <= 0.0 {
        return 1.0;
    }
    let grand_total = reference_total + window_total;
    let statistic = compensated_sum(columns.iter().flat_map(|&(reference_count, window_count)| {
        let column_total = reference_count + window_count;
        [
            (reference_count, reference_total),
            (window_count, window_total),
        ]
        .map(|(observed, row_total)| {
            let expected = row_total * column_total / grand_total;
            let deviation = observed - expected;
            deviation * deviation / expected
        })
    }));
    chi2_sf(statistic, (columns.len() - 1) as f64)
}

/// Survival function of the chi-square distribution, `scipy.stats.chi2.sf(x, dof)`
/// (= `scipy.special.chdtrc(dof, x)`): the regularised upper incomplete gamma function
/// `Q(dof/2, x/2)`.
///
/// `Q(a, z)` is evaluated as in Numerical Recipes' `gammq`: for `z < a + 1` as `1 − P(a, z)` with
/// the power series `P = e^(−z)·z^a/Γ(a+1)·Σₙ zⁿ/((a+1)…(a+n))`, otherwise with the modified Lentz
/// continued fraction for `Q`, which keeps relative accuracy in the far tail. Returns 1 for
/// `x ≤ 0`, 0 for `x = +∞`, NaN for NaN arguments or `dof ≤ 0` (as scipy).
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    if x.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x == f64::INFINITY {
        return 0.0;
    }
    regularized_gamma_q(dof / 2.0, x / 2.0)
}

/// Natural logarithm of the gamma function for `x > 0` (`scipy.special.gammaln`).
///
/// Lanczos approximation with `N = 13`, `g ≈ 6.0247` (the coefficients of CPython's
/// `math.lgamma`, Boost's `lanczos13m53`): `ln Γ(x) = ln Lₛ(x) − g + (x − ½)·(ln(x + g − ½) − 1)`,
/// about 1e-15 relative; exact zeros at 1 and 2. NaN for `x ≤ 0` or NaN, +∞ for +∞.
pub fn ln_gamma(x: f64) -> f64 {
    // Exactly 6.024680040776729583740234375.
    const G: f64 = 6.024_680_040_776_73;
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x == 1.0 || x == 2.0 {
        return 0.0;
    }
    if x == f64::INFINITY {
        return f64::INFINITY;
    }
    lanczos_sum(x).ln() - G + (x - 0.5) * ((x + G - 0.5).ln() - 1.0)
}

/// Arithmetic mean of the finite values (`np.mean`); NaN when there is none.
pub fn mean(values: &[f64]) -> f64 {
    let count = values.iter().filter(|value| value.is_finite()).count();
    if count == 0 {
        return f64::NAN;
    }
    compensated_sum(finite(values)) / count as f64
}

/// Population standard deviation (ddof 0) of the finite values, two-pass:
/// `sqrt(Σ (x − mean)² / n)` (`np.std(values)`); NaN when there is no finite value.
pub fn std_ddof0(values: &[f64]) -> f64 {
    let center = mean(values);
    if center.is_nan() {
        return f64::NAN;
    }
    let count = values.iter().filter(|value| value.is_finite()).count();
    let squares = compensated_sum(finite(values).map(|value| {
        let deviation = value - center;
        deviation * deviation
    }));
    (squares / count as f64).sqrt()
}

/// Median of the finite values (`np.median`): the middle value, or for an even count
/// `(a + b)/2` of the two middle values (numpy's mean of the two, not the linear quantile's lerp).
/// NaN when there is no finite value.
pub fn median(values: &[f64]) -> f64 {
    median_of_sorted(&finite_sorted(values))
}

/// Raw median absolute deviation of the finite values, `median(|x − median(x)|)`, unscaled —
/// `scipy.stats.median_abs_deviation(values, scale=1.0)`. NaN when there is no finite value.
pub fn mad(values: &[f64]) -> f64 {
    let center = median(values);
    if center.is_nan() {
        return f64::NAN;
    }
    let mut deviations: Vec<f64> = finite(values).map(|value| (value - center).abs()).collect();
    deviations.sort_unstable_by(f64::total_cmp);
    median_of_sorted(&deviations)
}

/// Mean absolute deviation around the mean of the finite values, `Σ |x − mean| / n`
/// (`np.mean(np.abs(x - np.mean(x)))`). NaN when there is no finite value.
pub fn mean_abs_deviation(values: &[f64]) -> f64 {
    let center = mean(values);
    if center.is_nan() {
        return f64::NAN;
    }
    let count = values.iter().filter(|value| value.is_finite()).count();
    compensated_sum(finite(values).map(|value| (value - center).abs())) / count as f64
}

/// Modified z-score of `x` against a reference profile (SPEC §7 "Outliers"):
/// `0.6745·|x − median| / mad` when `mad > 0`; otherwise `|x − median| / (1.253314·mean_abs_dev)`
/// when `mean_abs_dev > 0`; otherwise (a constant reference) 0 when `x == median` and +∞ when it
/// differs, so any departure from a constant column scores above every threshold.
///
/// NaN when `x` or `median` is NaN (the caller scores only finite values).
pub fn modified_z_score(x: f64, median: f64, mad: f64, mean_abs_dev: f64) -> f64 {
    if x.is_nan() || median.is_nan() {
        return f64::NAN;
    }
    let distance = (x - median).abs();
    if mad > 0.0 {
        MAD_Z_FACTOR * distance / mad
    } else if mean_abs_dev > 0.0 {
        distance / (MEAN_ABS_DEV_Z_FACTOR * mean_abs_dev)
    } else if x == median {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Walks the sorted union of two sorted samples once per distinct value, yielding
/// `(F_a(v), F_b(v), v, next distinct value)` where `F(v)` is the share of the sample `≤ v`,
/// computed as `count / size` exactly like scipy's `searchsorted(..., 'right') / size`.
struct CdfSteps<'a> {
    a: &'a [f64],
    b: &'a [f64],
    a_seen: usize,
    b_seen: usize,
}

impl<'a> CdfSteps<'a> {
    fn new(a: &'a [f64], b: &'a [f64]) -> Self {
        Self {
            a,
            b,
            a_seen: 0,
            b_seen: 0,
        }
    }

    fn next_value(&self) -> Option<f64> {
        match (self.a.get(self.a_seen), self.b.get(self.b_seen)) {
            (Some(&a), Some(&b)) => Some(a.min(b)),
            (Some(&a), None) => Some(a),
            (None, Some(&b)) => Some(b),
            (None, None) => None,
        }
    }
}

impl Iterator for CdfSteps<'_> {
    type Item = (f64, f64, f64, Option<f64>);

    fn next(&mut self) -> Option<Self::Item> {
        let value = self.next_value()?;
        // Both samples are sorted and `value` only grows: a forward walk visits each element once.
        while self.a.get(self.a_seen).is_some_and(|&x| x <= value) {
            self.a_seen += 1;
        }
        while self.b.get(self.b_seen).is_some_and(|&x| x <= value) {
            self.b_seen += 1;
        }
        let a_cdf = self.a_seen as f64 / self.a.len() as f64;
        let b_cdf = self.b_seen as f64 / self.b.len() as f64;
        Some((a_cdf, b_cdf, value, self.next_value()))
    }
}

/// The finite values of a sample.
fn finite(values: &[f64]) -> impl Iterator<Item = f64> + '_ {
    values.iter().copied().filter(|value| value.is_finite())
}

/// The finite values of a sample, sorted ascending; borrowed when they already are (window and
/// reference samples are kept sorted, so reports do not sort them again).
fn finite_sorted(values: &[f64]) -> std::borrow::Cow<'_, [f64]> {
    if values.iter().all(|v| v.is_finite()) && values.is_sorted_by(|a, b| a <= b) {
        return std::borrow::Cow::Borrowed(values);
    }
    let mut sorted: Vec<f64> = finite(values).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    std::borrow::Cow::Owned(sorted)
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let middle = sorted.len() / 2;
    match (sorted.len() % 2, sorted.get(middle)) {
        (_, None) => f64::NAN,
        (1, Some(&value)) => value,
        (_, Some(&upper)) => match middle.checked_sub(1).and_then(|index| sorted.get(index)) {
            Some(&lower) => (lower + upper) / 2.0,
            None => upper,
        },
    }
}

/// Pairs two per-bin slices by index, padding the shorter one with zeros.
fn paired<'a>(a: &'a [f64], b: &'a [f64]) -> impl Iterator<Item = (f64, f64)> + 'a {
    (0..a.len().max(b.len())).map(|index| {
        (
            a.get(index).copied().unwrap_or(0.0),
            b.get(index).copied().unwrap_or(0.0),
        )
    })
}

fn nonzero_fraction(fraction: f64) -> f64 {
    if fraction == 0.0 {
        ZERO_FRACTION
    } else {
        fraction
    }
}

/// `scipy.special.rel_entr(x, y)`: `x·ln(x/y)` for `x, y > 0`, 0 for `x = 0, y ≥ 0`, else +∞.
fn relative_entropy(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Neumaier's compensated sum: error independent of the number of terms for all practical
/// purposes. An overflow to ±∞ or a NaN term is returned as is.
fn compensated_sum<I: IntoIterator<Item = f64>>(values: I) -> f64 {
    let mut sum = 0.0_f64;
    let mut compensation = 0.0_f64;
    for value in values {
        let total = sum + value;
        compensation += if sum.abs() >= value.abs() {
            (sum - total) + value
        } else {
            (value - total) + sum
        };
        sum = total;
    }
    if sum.is_finite() {
        sum + compensation
    } else {
        sum
    }
}

/// Rational part of the Lanczos approximation used by [`ln_gamma`]; evaluated in `1/x` for large
/// `x` to avoid overflow (as CPython does).
fn lanczos_sum(x: f64) -> f64 {
    // Shortest round-trip forms of the published 50-digit coefficients.
    const NUMERATOR: [f64; 13] = [
        23_531_376_880.410_76,
        42_919_803_642.649_1,
        35_711_959_237.355_67,
        17_921_034_426.037_21,
        6_039_542_586.352_028,
        1_439_720_407.311_721_6,
        248_874_557.862_054_17,
        31_426_415.585_400_194,
        2_876_370.628_935_372_5,
        186_056.265_395_223_48,
        8_071.672_002_365_816,
        210.824_277_751_579_36,
        2.506_628_274_631_000_2,
    ];
    // x·(x+1)·…·(x+11) expanded.
    const DENOMINATOR: [f64; 13] = [
        0.0,
        39_916_800.0,
        120_543_840.0,
        150_917_976.0,
        105_258_076.0,
        45_995_730.0,
        13_339_535.0,
        2_637_558.0,
        357_423.0,
        32_670.0,
        1_925.0,
        66.0,
        1.0,
    ];
    let (mut numerator, mut denominator) = (0.0, 0.0);
    if x < 5.0 {
        for (&n, &d) in NUMERATOR.iter().zip(&DENOMINATOR).rev() {
            numerator = numerator * x + n;
            denominator = denominator * x + d;
        }
    } else {
        for (&n, &d) in NUMERATOR.iter().zip(&DENOMINATOR) {
            numerator = numerator / x + n;
            denominator = denominator / x + d;
        }
    }
    numerator / denominator
}

/// Regularised upper incomplete gamma `Q(a, z)` for `a > 0`, `0 < z < ∞` (NR `gammq`).
fn regularized_gamma_q(a: f64, z: f64) -> f64 {
    const MAX_ITERATIONS: u32 = 100_000;
    const TINY: f64 = 1e-300;
    // e^(−z)·z^a/Γ(a), in logs so it neither overflows nor underflows early.
    let prefactor = (a * z.ln() - z - ln_gamma(a)).exp();
    if z < a + 1.0 {
        let mut denominator = a;
        let mut term = 1.0 / a;
        let mut sum = term;
        for _ in 0..MAX_ITERATIONS {
            denominator += 1.0;
            term *= z / denominator;
            sum += term;
            if term.abs() < sum.abs() * f64::EPSILON {
                break;
            }
        }
        (1.0 - sum * prefactor).clamp(0.0, 1.0)
    } else {
        // Modified Lentz evaluation of Q = prefactor · 1/(z+1−a− 1·(1−a)/(z+3−a− 2·(2−a)/(z+5−a− …))).
        let mut b = z + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut fraction = d;
        for i in 1..=MAX_ITERATIONS {
            let i = f64::from(i);
            let an = -i * (i - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let delta = d * c;
            fraction *= delta;
            if (delta - 1.0).abs() < f64::EPSILON {
                break;
            }
        }
        (prefactor * fraction).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, relative: f64) -> bool {
        (actual - expected).abs() <= relative * actual.abs().max(expected.abs()) + 1e-300
    }

    #[test]
    fn quantile_matches_numpy_linear_on_small_cases() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        // np.quantile(np.arange(1, 11), [0, .2, .4, .5, 1]) == [1, 2.8, 4.6, 5.5, 10]
        assert_eq!(quantile_linear(&values, 0.0), 1.0);
        assert_eq!(quantile_linear(&values, 0.2), 2.8);
        assert_eq!(quantile_linear(&values, 0.4), 4.6);
        assert_eq!(quantile_linear(&values, 0.5), 5.5);
        assert_eq!(quantile_linear(&values, 1.0), 10.0);
        assert_eq!(quantile_linear(&values, 7.0), 10.0);
        assert_eq!(quantile_linear(&values, -1.0), 1.0);
        assert_eq!(quantile_linear(&[3.0], 0.3), 3.0);
        assert!(quantile_linear(&[], 0.5).is_nan());
        assert!(quantile_linear(&values, f64::NAN).is_nan());
    }

    #[test]
    fn edges_of_the_spec_example_and_degenerate_references() {
        let reference: Vec<f64> = (1..=10).map(f64::from).collect();
        // SPEC's "6.4" is numpy's 6.3999999999999995 printed short: 9·0.6 rounds below 5.4.
        assert_eq!(
            bin_edges(&reference, 5),
            vec![2.8, 4.6, 6.399_999_999_999_999_5, 8.2]
        );
        assert_eq!(bin_edges(&[7.0; 20], 10), vec![7.0]);
        assert_eq!(bin_edges(&reference, 1), Vec::<f64>::new());
        assert_eq!(bin_edges(&reference, 0), Vec::<f64>::new());
        assert_eq!(bin_edges(&[], 10), Vec::<f64>::new());
        assert_eq!(
            bin_edges(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY], 4),
            Vec::<f64>::new()
        );
        // Non-finite values do not shift the quantiles.
        let mut polluted = reference.clone();
        polluted.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
        assert_eq!(bin_edges(&polluted, 5), bin_edges(&reference, 5));
        // Two distinct values: the quantiles collapse onto them.
        assert_eq!(bin_edges(&[0.0, 0.0, 0.0, 1.0], 4), vec![0.0, 0.25]);
    }

    #[test]
    fn bins_are_right_closed_with_open_ends() {
        let edges = [2.8, 4.6, 6.4, 8.2];
        assert_eq!(bin_index(&edges, f64::NEG_INFINITY), 0);
        assert_eq!(bin_index(&edges, 2.8), 0);
        assert_eq!(bin_index(&edges, 2.800_000_000_000_001), 1);
        assert_eq!(bin_index(&edges, 4.6), 1);
        assert_eq!(bin_index(&edges, 8.2), 3);
        assert_eq!(bin_index(&edges, 8.3), 4);
        assert_eq!(bin_index(&edges, f64::INFINITY), 4);
        assert_eq!(bin_index(&edges, f64::NAN), 0);
        assert_eq!(bin_index(&[], 1.0), 0);
    }

    #[test]
    fn fractions_of_counts() {
        assert_eq!(fractions(&[1, 3]), vec![0.25, 0.75]);
        assert_eq!(fractions(&[0, 0, 0]), vec![0.0; 3]);
        assert_eq!(fractions(&[]), Vec::<f64>::new());
        assert_eq!(fractions(&[u64::MAX, u64::MAX]), vec![0.5, 0.5]);
    }

    #[test]
    fn psi_replaces_zero_fractions_without_renormalising() {
        assert_eq!(psi(&[], &[]), 0.0);
        assert_eq!(psi(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        assert_eq!(psi(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
        let expected = (0.5 - 1.0) * (0.5f64 / 1.0).ln()
            + (0.5 - ZERO_FRACTION) * (0.5f64 / ZERO_FRACTION).ln();
        assert!(close(psi(&[1.0, 0.0], &[0.5, 0.5]), expected, 1e-15));
        // A bin missing from one side counts as a zero fraction there.
        assert_eq!(psi(&[1.0], &[1.0, 0.0]), psi(&[1.0, 0.0], &[1.0, 0.0]));
        assert!(psi(&[f64::NAN], &[0.5]).is_nan());
    }

    #[test]
    fn js_distance_edge_cases() {
        assert_eq!(js_distance(&[], &[]), 0.0);
        assert_eq!(js_distance(&[0.0, 0.0], &[0.5, 0.5]), 0.0);
        assert_eq!(js_distance(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
        // Disjoint supports are at the maximum distance, 1 bit.
        assert!(close(js_distance(&[1.0, 0.0], &[0.0, 1.0]), 1.0, 1e-15));
        // Unnormalised input is normalised first (counts work as well as fractions).
        assert!(close(
            js_distance(&[2.0, 6.0], &[5.0, 5.0]),
            js_distance(&[0.25, 0.75], &[0.5, 0.5]),
            1e-15
        ));
        // scipy: jensenshannon([1.0, 0.0], [0.5, 0.5]) == 0.46450140402245893 (natural log).
        let natural = js_distance(&[1.0, 0.0], &[0.5, 0.5]) * LN_2.sqrt();
        assert!(close(natural, 0.464_501_404_022_458_93, 1e-14));
        assert!(js_distance(&[f64::NAN, 1.0], &[0.5, 0.5]).is_nan());
    }

    #[test]
    fn ks_edge_cases() {
        assert_eq!(ks_2samp(&[], &[1.0]), (0.0, 1.0));
        assert_eq!(ks_2samp(&[1.0], &[]), (0.0, 1.0));
        assert_eq!(ks_2samp(&[f64::NAN], &[1.0, 2.0]), (0.0, 1.0));
        assert_eq!(ks_2samp(&[1.0, 2.0, 2.0], &[2.0, 1.0, 2.0]), (0.0, 1.0));
        let (d, p) = ks_2samp(&[1.0, 2.0], &[3.0, 4.0, 5.0]);
        assert_eq!(d, 1.0);
        assert!(close(p, kstwobign_sf((6.0f64 / 5.0).sqrt()), 1e-15));
        // Ties across samples: both CDFs jump together at 2.
        assert_eq!(ks_2samp(&[1.0, 2.0, 2.0, 3.0], &[2.0, 2.0]).0, 0.25);
    }

    #[test]
    fn kolmogorov_survival_function_limits_and_branch_continuity() {
        assert_eq!(kstwobign_sf(0.0), 1.0);
        assert_eq!(kstwobign_sf(-3.0), 1.0);
        assert_eq!(kstwobign_sf(0.01), 1.0);
        assert_eq!(kstwobign_sf(40.0), 0.0);
        assert_eq!(kstwobign_sf(f64::INFINITY), 0.0);
        assert!(kstwobign_sf(f64::NAN).is_nan());
        // Both series are valid near the cutover; they must agree there.
        let below = kstwobign_sf(0.82);
        let above = kstwobign_sf(0.820_000_000_000_000_1);
        assert!(close(below, above, 1e-14));
        // scipy.stats.kstwobign.sf(1.0) == 0.26999967167735456
        assert!(close(kstwobign_sf(1.0), 0.269_999_671_677_354_56, 1e-14));
    }

    #[test]
    fn wasserstein_edge_cases() {
        assert_eq!(wasserstein(&[], &[1.0]), 0.0);
        assert_eq!(wasserstein(&[1.0, 2.0], &[2.0, 1.0]), 0.0);
        assert_eq!(wasserstein(&[0.0], &[5.0]), 5.0);
        // scipy.stats.wasserstein_distance([0, 1, 3], [5, 6, 8]) == 5.0
        assert!(close(
            wasserstein(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]),
            5.0,
            1e-15
        ));
        assert_eq!(wasserstein_normalized(&[], &[]), 0.0);
        // A constant reference divides by the floor instead of zero.
        assert!(close(
            wasserstein_normalized(&[1.0; 4], &[1.5; 4]),
            500.0,
            1e-15
        ));
        let steps: Vec<_> = CdfSteps::new(&[1.0, 2.0], &[2.0]).collect();
        assert_eq!(
            steps,
            vec![(0.5, 0.0, 1.0, Some(2.0)), (1.0, 1.0, 2.0, None)]
        );
    }

    #[test]
    fn chi2_contingency_edge_cases() {
        assert_eq!(chi2_contingency_p(&[], &[]), 1.0);
        assert_eq!(chi2_contingency_p(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(chi2_contingency_p(&[10.0, 0.0], &[7.0, 0.0]), 1.0);
        assert_eq!(chi2_contingency_p(&[10.0, 5.0], &[0.0, 0.0]), 1.0);
        assert_eq!(chi2_contingency_p(&[10.0, 5.0], &[20.0, 10.0]), 1.0);
        assert!(chi2_contingency_p(&[-1.0, 5.0], &[2.0, 3.0]).is_nan());
        assert!(chi2_contingency_p(&[f64::NAN, 5.0], &[2.0, 3.0]).is_nan());
        // dof 2, where chi2_sf(x, 2) = e^(−x/2) in closed form.
        let p = chi2_contingency_p(&[10.0, 20.0, 30.0], &[30.0, 20.0, 10.0]);
        // Row totals 60/60, column totals 40/40/40: expected 20 everywhere, X² = 4·(100/20) = 20.
        assert!(close(p, (-10.0f64).exp(), 1e-14));
    }

    #[test]
    fn chi2_survival_function_closed_forms() {
        // Far in the tail the relative error is that of `exp` at a large argument (~|x|·ε), as in
        // scipy, hence 1e-12 rather than 1e-15.
        for &x in &[1e-8, 0.1, 1.0, 3.9, 4.1, 10.0, 100.0, 1000.0] {
            // dof 2: Q(1, x/2) = e^(−x/2); dof 4: e^(−x/2)·(1 + x/2).
            assert!(
                close(chi2_sf(x, 2.0), (-x / 2.0).exp(), 1e-12),
                "dof 2 at {x}"
            );
            let dof4 = (-x / 2.0).exp() * (1.0 + x / 2.0);
            assert!(close(chi2_sf(x, 4.0), dof4, 1e-12), "dof 4 at {x}");
        }
        assert_eq!(chi2_sf(0.0, 3.0), 1.0);
        assert_eq!(chi2_sf(-1.0, 3.0), 1.0);
        assert_eq!(chi2_sf(f64::INFINITY, 3.0), 0.0);
        assert!(chi2_sf(f64::NAN, 3.0).is_nan());
        assert!(chi2_sf(1.0, 0.0).is_nan());
        assert!(chi2_sf(1.0, f64::NAN).is_nan());
        assert_eq!(chi2_sf(1e6, 3.0), 0.0);
    }

    #[test]
    fn ln_gamma_at_integers_and_half_integers() {
        let mut factorial: f64 = 1.0;
        for n in 1..=30 {
            // Γ(n) = (n−1)!
            assert!(
                close(ln_gamma(f64::from(n)), factorial.ln(), 1e-14),
                "n = {n}"
            );
            factorial *= f64::from(n);
        }
        // Γ(1/2) = √π, Γ(3/2) = √π/2.
        assert!(close(ln_gamma(0.5), PI.sqrt().ln(), 1e-15));
        assert!(close(ln_gamma(1.5), (PI.sqrt() / 2.0).ln(), 1e-14));
        assert!(ln_gamma(0.0).is_nan());
        assert!(ln_gamma(-1.5).is_nan());
        assert_eq!(ln_gamma(f64::INFINITY), f64::INFINITY);
    }

    #[test]
    fn descriptive_statistics() {
        let values = [1.0, 2.0, 3.0, 4.0, 100.0, f64::NAN, f64::INFINITY];
        assert_eq!(mean(&values), 22.0);
        assert_eq!(median(&values), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        // |x − 3| = [2, 1, 0, 1, 97] → median 1.
        assert_eq!(mad(&values), 1.0);
        // |x − 22| = [21, 20, 19, 18, 78] → mean 31.2.
        assert!(close(mean_abs_deviation(&values), 31.2, 1e-15));
        assert!(close(
            std_ddof0(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]),
            2.0,
            1e-15
        ));
        for empty in [&[][..], &[f64::NAN][..]] {
            assert!(mean(empty).is_nan());
            assert!(std_ddof0(empty).is_nan());
            assert!(median(empty).is_nan());
            assert!(mad(empty).is_nan());
            assert!(mean_abs_deviation(empty).is_nan());
        }
        assert_eq!(std_ddof0(&[5.0]), 0.0);
        // Compensated: naive summation would lose the small terms entirely.
        assert_eq!(mean(&[1e16, 1.0, 1.0, -1e16]), 0.5);
    }

    #[test]
    fn modified_z_score_branches() {
        assert!(close(modified_z_score(5.0, 3.0, 2.0, 1.0), 0.6745, 1e-15));
        assert!(close(
            modified_z_score(1.0, 3.0, 0.0, 2.0),
            2.0 / (1.253314 * 2.0),
            1e-15
        ));
        assert_eq!(modified_z_score(3.0, 3.0, 0.0, 0.0), 0.0);
        assert_eq!(modified_z_score(3.5, 3.0, 0.0, 0.0), f64::INFINITY);
        assert!(modified_z_score(f64::NAN, 3.0, 1.0, 1.0).is_nan());
        assert!(modified_z_score(1.0, f64::NAN, 1.0, 1.0).is_nan());
    }
}
