//! The demo's recommender: ranks a catalog by how often each item was clicked — a popularity
//! model retrained on the clicks its own rankings produced, the textbook degenerate feedback loop.
//! Two independent copies (`plain`, `explore`) let the demo show the loop narrowing what is shown
//! without exploration, and exploration holding it open.

use std::sync::{Arc, Mutex};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

/// Items in the catalog.
pub const CATALOG: usize = 200;
/// Candidates per recommended list (what the model returns).
pub const LIST: usize = 50;
/// Positions the demo's app displays (and users click on).
pub const DISPLAYED: usize = 10;
pub const VARIANTS: [&str; 2] = ["plain", "explore"];

/// What users actually like: each item's click probability at the top position.
pub fn appeal(item: usize) -> f64 {
    // A long tail of decent items: appeal does not follow the catalog order.
    let x = ((item * 7919) % CATALOG) as f64 / CATALOG as f64;
    0.02 + 0.18 * (1.0 - x).powi(2)
}

struct Model {
    clicks: Vec<u64>,
    rng: SmallRng,
}

/// Both variants' state.
#[derive(Clone)]
pub struct Recommender {
    models: Arc<Mutex<Vec<Model>>>,
}

impl Default for Recommender {
    fn default() -> Self {
        Self::new()
    }
}

impl Recommender {
    pub fn new() -> Self {
        let models = VARIANTS
            .iter()
            .enumerate()
            .map(|(i, _)| Model {
                clicks: vec![0; CATALOG],
                rng: SmallRng::seed_from_u64(0xd1ce + i as u64),
            })
            .collect();
        Self {
            models: Arc::new(Mutex::new(models)),
        }
    }

    fn variant(name: &str) -> Option<usize> {
        VARIANTS.iter().position(|v| *v == name)
    }

    /// The top `LIST` items by clicks (ties broken at random, so a fresh model shows a little of
    /// everything), as `{"user", "items": [{"id", "score"}]}`.
    pub fn recommend(&self, variant: &str, user: &str) -> Option<Value> {
        let index = Self::variant(variant)?;
        let mut models = self.models.lock().ok()?;
        let model = &mut models[index];
        let mut scored: Vec<(f64, usize)> = (0..CATALOG)
            .map(|item| {
                (
                    model.clicks[item] as f64 + model.rng.random::<f64>() * 2.0,
                    item,
                )
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let items: Vec<Value> = scored
            .iter()
            .take(LIST)
            .map(|(score, item)| json!({"id": format!("item-{item:03}"), "score": (score * 100.0).round() / 100.0}))
            .collect();
        Some(json!({"user": user, "model": format!("popularity-{variant}"), "items": items}))
    }

    /// A click: the item gains popularity in that variant.
    pub fn click(&self, variant: &str, item: usize) -> bool {
        let (Some(index), Ok(mut models)) = (Self::variant(variant), self.models.lock()) else {
            return false;
        };
        match models[index].clicks.get_mut(item) {
            Some(clicks) => {
                *clicks += 1;
                true
            }
            None => false,
        }
    }
}
