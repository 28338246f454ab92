//! Model performance from joined labels (pure functions, checked against scikit-learn):
//! classification accuracy and macro precision, recall and F1; regression MAE and RMSE.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// Classification metrics over (truth, prediction) pairs, as
/// `sklearn.metrics.{accuracy_score, precision_score, recall_score, f1_score}(average="macro",
/// zero_division=0)`: classes are the union of truths and predictions; a class never predicted
/// has precision 0, a class never true has recall 0; F1 per class is 2·tp/(2·tp + fp + fn).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Confusion {
    /// (truth, predicted) → count.
    counts: BTreeMap<(String, String), u64>,
    total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassificationScores {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Confusion {
    pub fn add(&mut self, truth: &str, predicted: &str) {
        *self
            .counts
            .entry((truth.to_owned(), predicted.to_owned()))
            .or_default() += 1;
        self.total += 1;
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn scores(&self) -> Option<ClassificationScores> {
        if self.total == 0 {
            return None;
        }
        let classes: BTreeSet<&String> = self.counts.keys().flat_map(|(t, p)| [t, p]).collect();
        let correct: u64 = self
            .counts
            .iter()
            .filter(|((t, p), _)| t == p)
            .map(|(_, n)| n)
            .sum();
        let (mut precision, mut recall, mut f1) = (0.0, 0.0, 0.0);
        for class in &classes {
            let tp = self
                .counts
                .get(&((*class).clone(), (*class).clone()))
                .copied()
                .unwrap_or(0) as f64;
            let predicted: u64 = self
                .counts
                .iter()
                .filter(|((_, p), _)| p == *class)
                .map(|(_, n)| n)
                .sum();
            let actual: u64 = self
                .counts
                .iter()
                .filter(|((t, _), _)| t == *class)
                .map(|(_, n)| n)
                .sum();
            let (fp, fn_) = (predicted as f64 - tp, actual as f64 - tp);
            precision += if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            recall += if actual > 0 { tp / actual as f64 } else { 0.0 };
            let denominator = 2.0 * tp + fp + fn_;
            f1 += if denominator > 0.0 {
                2.0 * tp / denominator
            } else {
                0.0
            };
        }
        let k = classes.len() as f64;
        Some(ClassificationScores {
            accuracy: correct as f64 / self.total as f64,
            precision: precision / k,
            recall: recall / k,
            f1: f1 / k,
        })
    }
}

/// Regression errors, as `sklearn.metrics.mean_absolute_error` and
/// `root_mean_squared_error`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Errors {
    absolute: f64,
    squared: f64,
    compensation: (f64, f64),
    count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegressionScores {
    pub mae: f64,
    pub rmse: f64,
}

impl Errors {
    pub fn add(&mut self, truth: f64, predicted: f64) {
        let error = truth - predicted;
        kahan(&mut self.absolute, &mut self.compensation.0, error.abs());
        kahan(&mut self.squared, &mut self.compensation.1, error * error);
        self.count += 1;
    }

    pub fn total(&self) -> u64 {
        self.count
    }

    pub fn scores(&self) -> Option<RegressionScores> {
        (self.count > 0).then(|| RegressionScores {
            mae: self.absolute / self.count as f64,
            rmse: (self.squared / self.count as f64).sqrt(),
        })
    }
}

fn kahan(sum: &mut f64, compensation: &mut f64, value: f64) {
    let y = value - *compensation;
    let t = *sum + y;
    *compensation = (t - *sum) - y;
    *sum = t;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_scores_follow_sklearn_on_a_small_case() {
        // y_true = [0,0,1,1,2], y_pred = [0,1,1,1,0]:
        // sklearn: accuracy 0.6, precision 0.3888..., recall 0.5, f1 0.4333...
        let mut confusion = Confusion::default();
        for (t, p) in [("0", "0"), ("0", "1"), ("1", "1"), ("1", "1"), ("2", "0")] {
            confusion.add(t, p);
        }
        let scores = confusion.scores().unwrap();
        assert!((scores.accuracy - 0.6).abs() < 1e-15);
        assert!((scores.precision - 7.0 / 18.0).abs() < 1e-15);
        assert!((scores.recall - 0.5).abs() < 1e-15);
        assert!((scores.f1 - 13.0 / 30.0).abs() < 1e-15);
    }

    #[test]
    fn regression_errors() {
        let mut errors = Errors::default();
        for (t, p) in [(3.0, 2.5), (-0.5, 0.0), (2.0, 2.0), (7.0, 8.0)] {
            errors.add(t, p);
        }
        let scores = errors.scores().unwrap();
        assert!((scores.mae - 0.5).abs() < 1e-15);
        assert!((scores.rmse - 0.375f64.sqrt()).abs() < 1e-15);
    }
}
