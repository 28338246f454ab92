//! Exploration strategies and their propensities (SPEC §9), as pure, seeded functions: the same
//! candidates, parameters and seed always give the same decision, so every logged decision can be
//! replayed.
//!
//! Positions are split into *fixed* ones (the first `fixed_top`, pinned items, and everything past
//! the `candidates` window), which keep their item, and *free* ones, whose items form the pool the
//! strategy reorders. For every free slot the decision records the conditional probability of the
//! item chosen there given the slots before it, the cascade (their running product) and, where it
//! has a closed form, the marginal probability of that item at that position.

use super::rng::DecisionRng;

use crate::monitor::stats::ln_gamma;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Each free slot takes the best remaining item with probability 1−ε, else a uniform pick
    /// from the remaining pool: p = (1−ε)·[greedy] + ε/|R|.
    EpsilonGreedy { epsilon: f64 },
    /// Plackett–Luce over score/τ (over −rank/τ when there are no scores):
    /// p = exp(s/τ) / Σ_{R} exp(s_j/τ).
    Softmax { temperature: f64 },
    /// Swaps the first free slot with a uniform free slot (itself included).
    RandPair,
    /// A uniform shuffle of the free slots.
    RandTopN,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Self::EpsilonGreedy { .. } => "epsilon_greedy",
            Self::Softmax { .. } => "softmax",
            Self::RandPair => "rand_pair",
            Self::RandTopN => "rand_top_n",
        }
    }
}

/// One item of the list, in the model's order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub score: Option<f64>,
    pub pinned: bool,
}

/// What was shown at one position.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// 0-based position in the returned list.
    pub position: usize,
    /// Index of the item in the model's order.
    pub item: usize,
    /// P(this item here | the slots before); 1 for fixed slots.
    pub p_conditional: f64,
    /// Product of the conditionals up to this slot.
    pub p_cascade: f64,
    /// P(this item at this position) over all decisions, when it has a closed form.
    pub p_item_position: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `order[position]` = index of the item shown there, in the model's order.
    pub order: Vec<usize>,
    /// Every position, fixed and free.
    pub slots: Vec<Slot>,
    /// For each free slot, the distribution it was drawn from: `(item, probability)` (empty from
    /// [`decide_for_request`]).
    pub distributions: Vec<Vec<(usize, f64)>>,
    /// Product of all conditionals.
    pub p_joint: f64,
}

/// How many leading slots `strategy` keeps fixed: `fixed_top`, except for `rand_top_n`, which
/// shuffles the whole candidate window (SPEC §9) so that position bias can be estimated at the
/// top too (pinned items still stay).
pub fn fixed_slots(strategy: Strategy, fixed_top: usize) -> usize {
    match strategy {
        Strategy::RandTopN => 0,
        _ => fixed_top,
    }
}

/// Decides the order of `candidates` (model order) with `strategy`, keeping every free slot's
/// distribution (for offline evaluation and tests).
pub fn decide(
    strategy: Strategy,
    candidates: &[Candidate],
    fixed_top: usize,
    window: usize,
    seed: u64,
) -> Decision {
    decide_inner(strategy, candidates, fixed_top, window, seed, true)
}

/// The same decision as [`decide`] (same seed, same order, same propensities) without the
/// per-slot distributions: what the request path needs.
pub fn decide_for_request(
    strategy: Strategy,
    candidates: &[Candidate],
    fixed_top: usize,
    window: usize,
    seed: u64,
) -> Decision {
    decide_inner(strategy, candidates, fixed_top, window, seed, false)
}

fn decide_inner(
    strategy: Strategy,
    candidates: &[Candidate],
    fixed_top: usize,
    window: usize,
    seed: u64,
    keep_distributions: bool,
) -> Decision {
    let n = candidates.len();
    let window = window.min(n);
    let fixed_top = fixed_slots(strategy, fixed_top);
    let free: Vec<usize> = (fixed_top.min(window)..window)
        .filter(|&p| !candidates[p].pinned)
        .collect();
    let mut rng = DecisionRng::from_seed(seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut conditionals = vec![1.0; n];
    let mut marginals: Vec<Option<f64>> = vec![Some(1.0); n];
    let mut distributions = Vec::with_capacity(if keep_distributions { free.len() } else { 0 });
    let m = free.len();
    match strategy {
        Strategy::EpsilonGreedy { epsilon } => {
            let marginal = cached_marginals(m, epsilon);
            let mut pool: Vec<usize> = free.clone();
            for (k, &position) in free.iter().enumerate() {
                let size = pool.len() as f64;
                let probability =
                    |j: usize| epsilon / size + if j == 0 { 1.0 - epsilon } else { 0.0 };
                if keep_distributions {
                    distributions.push(
                        pool.iter()
                            .enumerate()
                            .map(|(j, &item)| (item, probability(j)))
                            .collect(),
                    );
                }
                let pick = if rng.unit() < 1.0 - epsilon {
                    0
                } else {
                    rng.below(pool.len())
                };
                let item = pool.remove(pick);
                conditionals[position] = probability(pick);
                order[position] = item;
                let pool_rank = free.iter().position(|&p| p == item).unwrap_or(0);
                marginals[position] = Some(marginal[pool_rank][k]);
            }
        }
        Strategy::Softmax { temperature } => {
            let temperature = temperature.max(1e-9);
            let utility = |item: usize| match candidates[item].score {
                Some(score) if score.is_finite() => score / temperature,
                _ => -(item as f64) / temperature,
            };
            // Weights once, against the pool's largest utility; each slot renormalises over what
            // remains (Plackett–Luce), so no exponential is taken twice.
            let top = free
                .iter()
                .map(|&i| utility(i))
                .fold(f64::NEG_INFINITY, f64::max);
            let mut pool: Vec<(usize, f64)> = free
                .iter()
                .map(|&i| (i, (utility(i) - top).exp()))
                .collect();
            for &position in &free {
                let total: f64 = pool.iter().map(|(_, w)| w).sum();
                if keep_distributions {
                    distributions.push(pool.iter().map(|&(i, w)| (i, w / total)).collect());
                }
                let mut target = rng.unit() * total;
                let mut pick = pool.len() - 1;
                for (j, (_, w)) in pool.iter().enumerate() {
                    if target < *w {
                        pick = j;
                        break;
                    }
                    target -= w;
                }
                let (item, weight) = pool.remove(pick);
                conditionals[position] = weight / total;
                marginals[position] = None;
                order[position] = item;
            }
        }
        Strategy::RandPair => {
            if let Some(&first) = free.first() {
                let j = rng.below(m);
                let other = free[j];
                order.swap(first, other);
                let uniform = 1.0 / m as f64;
                for (k, &position) in free.iter().enumerate() {
                    let (conditional, marginal) = if k == 0 {
                        (uniform, uniform)
                    } else if position == other {
                        (1.0, uniform)
                    } else {
                        (1.0, 1.0 - uniform)
                    };
                    conditionals[position] = conditional;
                    marginals[position] = Some(marginal);
                    if keep_distributions {
                        distributions.push(if k == 0 {
                            free.iter().map(|&p| (p, uniform)).collect()
                        } else {
                            vec![(order[position], 1.0)]
                        });
                    }
                }
            }
        }
        Strategy::RandTopN => {
            let mut pool: Vec<usize> = free.clone();
            for &position in &free {
                let p = 1.0 / pool.len() as f64;
                if keep_distributions {
                    distributions.push(pool.iter().map(|&i| (i, p)).collect());
                }
                let item = pool.remove(rng.below(pool.len()));
                conditionals[position] = p;
                marginals[position] = Some(1.0 / m as f64);
                order[position] = item;
            }
        }
    }
    let mut cascade = 1.0;
    let slots = (0..n)
        .map(|position| {
            cascade *= conditionals[position];
            Slot {
                position,
                item: order[position],
                p_conditional: conditionals[position],
                p_cascade: cascade,
                p_item_position: marginals[position],
            }
        })
        .collect();
    Decision {
        order,
        slots,
        distributions,
        p_joint: cascade,
    }
}

/// The marginals depend only on the pool size and ε, so each route computes them once per list
/// length (at most a few dozen tables are kept).
fn cached_marginals(m: usize, epsilon: f64) -> std::sync::Arc<Vec<Vec<f64>>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    type Cache = Mutex<HashMap<(usize, u64), Arc<Vec<Vec<f64>>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (m, epsilon.to_bits());
    if let Some(found) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return found;
    }
    let table = Arc::new(epsilon_greedy_marginals(m, epsilon));
    if let Ok(mut cache) = cache.lock() {
        if cache.len() >= 64 {
            cache.clear();
        }
        cache.insert(key, table.clone());
    }
    table
}

/// `marginal[i][k]`: P(pool item i (in model order) lands in free slot k) under ε-greedy, exact.
///
/// The state after k slots is summarised by r, the best remaining item: items better than r are
/// gone, and by symmetry of the uniform picks, the k − r items already taken from those worse
/// than r are a uniform subset of them. So P(i at k) = P(r_k = i)·a_k + Σ_{r<i} P(r_k = r)·
/// P(i remains | r)·ε/(m−k), with a_k = 1 − ε + ε/(m−k) and P(i remains | r) = (m−k−1)/(m−r−1).
/// O(m³); checked against enumeration of every permutation in the tests.
// The recurrences index several arrays by the same ranks; index loops read closest to the maths.
#[allow(clippy::needless_range_loop)]
pub fn epsilon_greedy_marginals(m: usize, epsilon: f64) -> Vec<Vec<f64>> {
    let mut marginal = vec![vec![0.0; m]; m];
    let mut best = vec![0.0; m + 1];
    if m == 0 {
        return marginal;
    }
    best[0] = 1.0;
    let ln_factorial: Vec<f64> = (0..=m).map(|x| ln_gamma(x as f64 + 1.0)).collect();
    let ln_choose = |n: usize, k: usize| ln_factorial[n] - ln_factorial[k] - ln_factorial[n - k];
    for k in 0..m {
        let remaining = (m - k) as f64;
        let greedy = 1.0 - epsilon + epsilon / remaining;
        for i in 0..m {
            let mut p = best[i] * greedy;
            for r in 0..i {
                if best[r] > 0.0 && m - r > 1 {
                    p += best[r] * ((m - k - 1) as f64 / (m - r - 1) as f64) * epsilon / remaining;
                }
            }
            marginal[i][k] = p;
        }
        // The distribution of the best remaining item after slot k.
        let mut next = vec![0.0; m + 1];
        for r in 0..m {
            if best[r] == 0.0 {
                continue;
            }
            // A non-greedy pick leaves r the best.
            next[r] += best[r] * (1.0 - greedy);
            // The greedy pick removes r; the next best is r + j, with items r+1..r+j−1 among the
            // d = k − r already taken from the a = m − r − 1 items worse than r.
            let above = m - r - 1;
            let taken = k - r.min(k);
            for j in 1..=above {
                if j - 1 > taken || above - j < taken - (j - 1) {
                    continue;
                }
                let ln_p = ln_choose(above - j, taken - (j - 1)) - ln_choose(above, taken);
                next[r + j] += best[r] * greedy * ln_p.exp();
            }
        }
        best = next;
    }
    marginal
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every order of the pool with its probability, by walking all branches of ε-greedy.
    fn enumerate(
        pool: Vec<usize>,
        epsilon: f64,
        prefix: Vec<usize>,
        p: f64,
        out: &mut Vec<(Vec<usize>, f64)>,
    ) {
        if pool.is_empty() {
            out.push((prefix, p));
            return;
        }
        let size = pool.len() as f64;
        for j in 0..pool.len() {
            let q = epsilon / size + if j == 0 { 1.0 - epsilon } else { 0.0 };
            let mut rest = pool.clone();
            let item = rest.remove(j);
            let mut next = prefix.clone();
            next.push(item);
            enumerate(rest, epsilon, next, p * q, out);
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn epsilon_greedy_marginals_equal_enumeration() {
        for (m, epsilon) in [(1, 0.3), (2, 0.5), (4, 0.2), (6, 0.35), (7, 1.0)] {
            let mut orders = Vec::new();
            enumerate((0..m).collect(), epsilon, Vec::new(), 1.0, &mut orders);
            let marginal = epsilon_greedy_marginals(m, epsilon);
            for item in 0..m {
                for slot in 0..m {
                    let exact: f64 = orders
                        .iter()
                        .filter(|(o, _)| o[slot] == item)
                        .map(|(_, p)| p)
                        .sum();
                    assert!(
                        (marginal[item][slot] - exact).abs() < 1e-12,
                        "m={m} ε={epsilon} item {item} slot {slot}: {} vs {exact}",
                        marginal[item][slot]
                    );
                }
            }
        }
    }

    #[test]
    fn decisions_replay_from_the_seed_and_joint_is_the_product() {
        let candidates: Vec<Candidate> = (0..10)
            .map(|i| Candidate {
                score: Some(1.0 / (i as f64 + 1.0)),
                pinned: i == 4,
            })
            .collect();
        for strategy in [
            Strategy::EpsilonGreedy { epsilon: 0.3 },
            Strategy::Softmax { temperature: 0.5 },
            Strategy::RandPair,
            Strategy::RandTopN,
        ] {
            let first = decide(strategy, &candidates, 1, 8, 42);
            assert_eq!(
                first,
                decide(strategy, &candidates, 1, 8, 42),
                "{strategy:?}"
            );
            if strategy != Strategy::RandTopN {
                assert_eq!(first.order[0], 0, "fixed_top");
            }
            assert_eq!(first.order[4], 4, "pinned");
            assert_eq!(first.order[8..], [8, 9], "beyond the window");
            let product: f64 = first.slots.iter().map(|s| s.p_conditional).product();
            assert!((first.p_joint - product).abs() < 1e-15);
            let mut sorted = first.order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>(), "a permutation");
        }
    }
}
