//! `driftwatch export` (SPEC §2, §9): recorded exploration decisions, joined with the rewards that
//! came back for them, as data for the offline tools — Vowpal Wabbit DSJson for contextual bandits
//! (`vw-cb`: the first free slot) and conditional contextual bandits (`vw-ccb`: every free slot),
//! and an Open Bandit Pipeline CSV (`obp`: one row per free slot). The formats are specified in
//! docs/exploration.md, "Offline evaluation with the exports".
//!
//! The log keeps the propensity of each item shown, but the learners also want the distribution
//! each slot was drawn from. Every decision is therefore replayed from its logged seed with the
//! very strategy code of the request path ([`strategy::decide`]), and exported only when the
//! replay reproduces the logged list and propensities: a decision that does not replay is skipped
//! and counted, never exported with guessed probabilities.
//!
//! Only `explored` decisions are exported. A holdout or shadow response showed the model's own
//! order with probability 1 (shadow logs a decision the user never saw), so it carries no
//! exploration, and mixing it in would bias inverse-propensity estimates; like every other record
//! left out, it is counted in [`ExportStats::skipped`] under its reason.
//!
//! Memory: the rewards file is held in memory (keyed by request id, released as decisions are
//! written), and so are the ids of the decisions written, to drop duplicate records (sinks deliver
//! at least once); records themselves are streamed.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::{self, BufRead, BufWriter, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::strategy::{self, Candidate, Strategy};

/// What `driftwatch export --format` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// VW DSJson contextual-bandit lines (`vw --cb_explore_adf --dsjson`).
    VwCb,
    /// VW DSJson conditional-contextual-bandit lines (`vw --ccb_explore_adf --dsjson`).
    VwCcb,
    /// Open Bandit Pipeline CSV.
    Obp,
}

impl ExportFormat {
    pub const ALL: [Self; 3] = [Self::VwCb, Self::VwCcb, Self::Obp];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::VwCb => "vw-cb",
            Self::VwCcb => "vw-ccb",
            Self::Obp => "obp",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown export format {0:?}: expected vw-cb, vw-ccb or obp")]
pub struct UnknownFormat(pub String);

impl FromStr for ExportFormat {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|format| format.as_str() == name)
            .ok_or_else(|| UnknownFormat(name.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading the {what} file: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("writing the export: {0}")]
    Write(#[source] io::Error),
}

/// What an export did: every record and every reward line ends up counted somewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportStats {
    /// Non-empty lines of the records file.
    pub records: u64,
    /// Decisions written.
    pub decisions: u64,
    /// Lines (VW formats: one per decision) or data rows (OBP: one per free slot) written.
    pub rows: u64,
    /// Records not exported, by reason: the exploration `outcome` of decisions that were not
    /// explored (`holdout`, `shadow`, `opt_out`, `empty`, `skipped_*`), or one of [`skip`].
    pub skipped: BTreeMap<String, u64>,
    pub rewards: RewardStats,
}

/// What became of the lines of the rewards file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RewardStats {
    /// Non-empty lines.
    pub lines: u64,
    /// Lines that are not a `{"request_id", "id", "reward"}` object.
    pub malformed: u64,
    /// Later lines for a (request, item) that already had a reward: the first one wins, as for
    /// labels.
    pub duplicate: u64,
    /// Rewards written into the export.
    pub joined: u64,
    /// Rewards of an exported decision for an item outside the exported slots: a fixed or pinned
    /// position, an item not shown, or (`vw-cb`) any slot but the first free one.
    pub unused: u64,
    /// Rewards whose request id is not an exported decision.
    pub unmatched: u64,
}

/// Reasons a record is skipped, besides the outcome of a decision that was not explored.
pub mod skip {
    /// Not JSON, or an `exploration` field without the fields an explored decision has.
    pub const MALFORMED: &str = "malformed";
    /// A record of a route without exploration (`exploration` null or absent).
    pub const NOT_EXPLORATION: &str = "not_exploration";
    /// A record id already exported (at-least-once delivery).
    pub const DUPLICATE: &str = "duplicate";
    /// Every position was fixed (`fixed_top`, pins, or a list no longer than `fixed_top`).
    pub const NO_FREE_SLOT: &str = "no_free_slot";
    /// Replaying the logged seed did not reproduce the logged list and propensities (a record
    /// edited after the fact, or written by a driftwatch whose strategies differ).
    pub const REPLAY_MISMATCH: &str = "replay_mismatch";
    /// A shown item with propensity 0 (softmax weights that underflowed): no estimator can use it.
    pub const ZERO_PROPENSITY: &str = "zero_propensity";
}

/// Exports the decisions of `records` (driftwatch records, JSON Lines) joined with `rewards`
/// (the `feedback.rewards_file`, JSON Lines) as `format` to `out`.
///
/// Records and reward lines that cannot be used are counted, not fatal; only I/O errors are.
pub fn export(
    mut records: impl BufRead,
    rewards: Option<&mut dyn BufRead>,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<ExportStats, ExportError> {
    let mut stats = ExportStats::default();
    let mut rewards = match rewards {
        Some(input) => Rewards::read(input, &mut stats.rewards)?,
        None => Rewards::default(),
    };
    let mut output = Output::new(format, out)?;
    let mut exported_ids = HashSet::new();
    for_each_line(&mut records, "records", |line| {
        stats.records += 1;
        let mut decision = match read_decision(line) {
            Ok(decision) if exported_ids.contains(&decision.request_id) => {
                count(&mut stats.skipped, skip::DUPLICATE);
                return Ok(());
            }
            Ok(decision) => decision,
            Err(reason) => {
                count(&mut stats.skipped, &reason);
                return Ok(());
            }
        };
        let used_slots = match format {
            ExportFormat::VwCb => 1,
            ExportFormat::VwCcb | ExportFormat::Obp => decision.slots.len(),
        };
        rewards.join(&mut decision, used_slots, &mut stats.rewards);
        stats.rows += output.write(&decision)?;
        stats.decisions += 1;
        exported_ids.insert(decision.request_id);
        Ok(())
    })?;
    output.finish()?;
    stats.rewards.unmatched = rewards.by_request.values().map(|r| r.len() as u64).sum();
    Ok(stats)
}

/// Calls `each` with every non-empty line of `input` (bytes: a line that is not UTF-8 is the
/// caller's to count as malformed, not an I/O error).
fn for_each_line(
    input: &mut dyn BufRead,
    what: &'static str,
    mut each: impl FnMut(&[u8]) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|source| ExportError::Read { what, source })?;
        if read == 0 {
            return Ok(());
        }
        if !line.trim_ascii().is_empty() {
            each(&line)?;
        }
    }
}

fn count(counts: &mut BTreeMap<String, u64>, reason: &str) {
    match counts.get_mut(reason) {
        Some(n) => *n += 1,
        None => {
            counts.insert(reason.to_owned(), 1);
        }
    }
}

// --- Reading the log ---------------------------------------------------------------------------

/// The parts of a record the export reads (bodies are skipped, never built).
#[derive(Deserialize)]
struct Record {
    id: String,
    time: String,
    model: Option<String>,
    exploration: Option<Log>,
}

/// The record's `exploration` field (src/explore/route.rs writes it). Everything but route and
/// outcome is optional, because decisions that were not made (opt-out, no list) log only those.
#[derive(Deserialize)]
struct Log {
    route: String,
    outcome: String,
    strategy: Option<String>,
    params: Option<Params>,
    unit: Option<String>,
    seed: Option<String>,
    #[serde(default)]
    candidates: Vec<LoggedCandidate>,
    #[serde(default)]
    shown: Vec<LoggedSlot>,
    p_joint: Option<f64>,
}

#[derive(Deserialize)]
struct Params {
    epsilon: Option<f64>,
    temperature: Option<f64>,
    fixed_top: usize,
    candidates: usize,
}

#[derive(Deserialize)]
struct LoggedCandidate {
    id: String,
    score: Option<f64>,
    model_rank: usize,
    pinned: bool,
}

#[derive(Deserialize)]
struct LoggedSlot {
    id: String,
    position: usize,
    model_rank: usize,
    p_conditional: f64,
    p_item_position: Option<f64>,
    p_cascade: f64,
}

/// One decision, ready to write.
#[derive(Debug)]
struct Exported {
    request_id: String,
    time: String,
    model: Option<String>,
    route: String,
    unit: Option<String>,
    /// The items the free slots were filled from, in the model's order: the action set.
    actions: Vec<Action>,
    /// The free slots, top to bottom.
    slots: Vec<FreeSlot>,
    p_joint: f64,
}

#[derive(Debug)]
struct Action {
    id: String,
    model_rank: usize,
    score: Option<f64>,
}

#[derive(Debug)]
struct FreeSlot {
    /// 1-based position in the returned list.
    position: usize,
    /// Index into `actions` of the item shown here.
    chosen: usize,
    /// The distribution the slot was drawn from, given the slots above: (index into `actions`,
    /// probability), in the model's order.
    distribution: Vec<(usize, f64)>,
    p_conditional: f64,
    p_item_position: Option<f64>,
    p_cascade: f64,
    /// Joined from the rewards file; 0 when none came.
    reward: f64,
}

/// Reads one record line into a decision to export, or the reason it is skipped.
fn read_decision(line: &[u8]) -> Result<Exported, String> {
    let record: Record = serde_json::from_slice(line).map_err(|_| skip::MALFORMED.to_owned())?;
    let log = record
        .exploration
        .ok_or_else(|| skip::NOT_EXPLORATION.to_owned())?;
    if log.outcome != super::route::outcome::EXPLORED {
        return Err(log.outcome);
    }
    let malformed = || skip::MALFORMED.to_owned();
    let params = log.params.as_ref().ok_or_else(malformed)?;
    let strategy = match log.strategy.as_deref().ok_or_else(malformed)? {
        "epsilon_greedy" => Strategy::EpsilonGreedy {
            epsilon: params.epsilon.ok_or_else(malformed)?,
        },
        "softmax" => Strategy::Softmax {
            temperature: params.temperature.ok_or_else(malformed)?,
        },
        "rand_pair" => Strategy::RandPair,
        "rand_top_n" => Strategy::RandTopN,
        _ => return Err(malformed()),
    };
    let seed = log
        .seed
        .as_deref()
        .and_then(|seed| u64::from_str_radix(seed.strip_prefix("0x")?, 16).ok())
        .ok_or_else(malformed)?;
    let p_joint = log.p_joint.ok_or_else(malformed)?;
    if log
        .candidates
        .iter()
        .enumerate()
        .any(|(index, c)| c.model_rank != index + 1)
    {
        return Err(malformed());
    }

    // The log holds the candidates window only; items past it never move, so replaying over the
    // window alone draws the same random numbers as the request path did over the whole list.
    let candidates: Vec<Candidate> = log
        .candidates
        .iter()
        .map(|c| Candidate {
            score: c.score,
            pinned: c.pinned,
        })
        .collect();
    let replay = strategy::decide(
        strategy,
        &candidates,
        params.fixed_top,
        params.candidates,
        seed,
    );
    let mismatch = || skip::REPLAY_MISMATCH.to_owned();
    if log.shown.len() < candidates.len() {
        return Err(mismatch());
    }
    for (slot, shown) in replay.slots.iter().zip(&log.shown) {
        if shown.position != slot.position + 1
            || shown.model_rank != slot.item + 1
            || shown.id != log.candidates[slot.item].id
            || !same_probability(shown.p_conditional, slot.p_conditional)
        {
            return Err(mismatch());
        }
    }

    // The free positions, as `strategy::decide` finds them.
    let window = params.candidates.min(candidates.len());
    let fixed_top = strategy::fixed_slots(strategy, params.fixed_top);
    let free: Vec<usize> = (fixed_top.min(window)..window)
        .filter(|&position| !candidates[position].pinned)
        .collect();
    if free.is_empty() {
        return Err(skip::NO_FREE_SLOT.to_owned());
    }
    if free.len() != replay.distributions.len() {
        return Err(mismatch());
    }
    let mut action_of = vec![None; candidates.len()];
    for (action, &item) in free.iter().enumerate() {
        action_of[item] = Some(action);
    }
    let mut slots = Vec::with_capacity(free.len());
    for (&position, distribution) in free.iter().zip(&replay.distributions) {
        let shown = &log.shown[position];
        if shown.p_conditional <= 0.0 {
            return Err(skip::ZERO_PROPENSITY.to_owned());
        }
        let distribution = distribution
            .iter()
            .map(|&(item, p)| action_of[item].map(|action| (action, p)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(mismatch)?;
        slots.push(FreeSlot {
            position: position + 1,
            chosen: action_of[replay.order[position]].ok_or_else(mismatch)?,
            distribution,
            p_conditional: shown.p_conditional,
            p_item_position: shown.p_item_position,
            p_cascade: shown.p_cascade,
            reward: 0.0,
        });
    }
    let actions = free
        .iter()
        .map(|&item| {
            let candidate = &log.candidates[item];
            Action {
                id: candidate.id.clone(),
                model_rank: candidate.model_rank,
                score: candidate.score,
            }
        })
        .collect();
    Ok(Exported {
        request_id: record.id,
        time: record.time,
        model: record.model,
        route: log.route,
        unit: log.unit,
        actions,
        slots,
        p_joint,
    })
}

/// Equal up to float formatting: the log round-trips exactly, but tolerate the last bits.
fn same_probability(logged: f64, replayed: f64) -> bool {
    (logged - replayed).abs() <= 1e-12 * logged.abs().max(replayed.abs())
}

// --- Rewards -----------------------------------------------------------------------------------

/// The rewards file, by request id, then item id.
#[derive(Default)]
struct Rewards {
    by_request: HashMap<String, HashMap<String, f64>>,
}

impl Rewards {
    fn read(input: &mut dyn BufRead, stats: &mut RewardStats) -> Result<Self, ExportError> {
        let mut rewards = Self::default();
        for_each_line(input, "rewards", |line| {
            stats.lines += 1;
            let Some((request_id, item, reward)) = parse_reward(line) else {
                stats.malformed += 1;
                return Ok(());
            };
            match rewards
                .by_request
                .entry(request_id)
                .or_default()
                .entry(item)
            {
                Entry::Occupied(_) => stats.duplicate += 1,
                Entry::Vacant(slot) => {
                    slot.insert(reward);
                }
            }
            Ok(())
        })?;
        Ok(rewards)
    }

    /// Sets the reward of the first `used_slots` free slots, and releases the request's rewards.
    fn join(&mut self, decision: &mut Exported, used_slots: usize, stats: &mut RewardStats) {
        let Some(mut given) = self.by_request.remove(&decision.request_id) else {
            return;
        };
        for slot in decision.slots.iter_mut().take(used_slots) {
            if let Some(reward) = given.remove(&decision.actions[slot.chosen].id) {
                slot.reward = reward;
                stats.joined += 1;
            }
        }
        stats.unused += given.len() as u64;
    }
}

/// `{"request_id": "...", "id": "item-3", "reward": 1.0, ...}`; a numeric id is taken as its JSON
/// text, as the feedback endpoint does.
fn parse_reward(line: &[u8]) -> Option<(String, String, f64)> {
    let value: Value = serde_json::from_slice(line).ok()?;
    let request_id = value.get("request_id")?.as_str()?.to_owned();
    let item = match value.get("id")? {
        Value::String(id) => id.clone(),
        Value::Number(id) => id.to_string(),
        _ => return None,
    };
    let reward = value.get("reward")?.as_f64()?;
    Some((request_id, item, reward))
}

// --- Writing -----------------------------------------------------------------------------------

enum Output<'a> {
    Cb(BufWriter<&'a mut dyn Write>),
    Ccb(BufWriter<&'a mut dyn Write>),
    Obp {
        csv: Box<csv::Writer<&'a mut dyn Write>>,
        /// OBP's integer action of each item id, in order of first appearance.
        actions: HashMap<String, usize>,
        slates: u64,
    },
}

/// The OBP CSV's columns. The first nine are the Open Bandit Dataset's names where it has them.
pub const OBP_COLUMNS: [&str; 14] = [
    "timestamp",
    "request_id",
    "item_id",
    "position",
    "click",
    "propensity_score",
    "pscore_cascade",
    "pscore_joint",
    "model_rank",
    "reward",
    "pscore_conditional",
    "slate_id",
    "action",
    "route",
];

impl<'a> Output<'a> {
    fn new(format: ExportFormat, out: &'a mut dyn Write) -> Result<Self, ExportError> {
        Ok(match format {
            ExportFormat::VwCb => Self::Cb(BufWriter::new(out)),
            ExportFormat::VwCcb => Self::Ccb(BufWriter::new(out)),
            ExportFormat::Obp => {
                let mut csv = csv::Writer::from_writer(out);
                csv.write_record(OBP_COLUMNS).map_err(csv_error)?;
                Self::Obp {
                    csv: Box::new(csv),
                    actions: HashMap::new(),
                    slates: 0,
                }
            }
        })
    }

    /// Writes one decision; returns the lines or rows written.
    fn write(&mut self, decision: &Exported) -> Result<u64, ExportError> {
        match self {
            Self::Cb(out) => {
                serde_json::to_writer(&mut *out, &cb_line(decision))
                    .map_err(|e| ExportError::Write(e.into()))?;
                out.write_all(b"\n").map_err(ExportError::Write)?;
                Ok(1)
            }
            Self::Ccb(out) => {
                serde_json::to_writer(&mut *out, &ccb_line(decision))
                    .map_err(|e| ExportError::Write(e.into()))?;
                out.write_all(b"\n").map_err(ExportError::Write)?;
                Ok(1)
            }
            Self::Obp {
                csv,
                actions,
                slates,
            } => {
                for slot in &decision.slots {
                    let item = &decision.actions[slot.chosen];
                    let next = actions.len();
                    let action = *actions.entry(item.id.clone()).or_insert(next);
                    let click = if slot.reward > 0.0 { "1" } else { "0" };
                    csv.write_record([
                        decision.time.as_str(),
                        &decision.request_id,
                        &item.id,
                        &slot.position.to_string(),
                        click,
                        &number(slot.p_item_position.unwrap_or(slot.p_conditional)),
                        &number(slot.p_cascade),
                        &number(decision.p_joint),
                        &item.model_rank.to_string(),
                        &number(slot.reward),
                        &number(slot.p_conditional),
                        &slates.to_string(),
                        &action.to_string(),
                        &decision.route,
                    ])
                    .map_err(csv_error)?;
                }
                *slates += 1;
                Ok(decision.slots.len() as u64)
            }
        }
    }

    fn finish(self) -> Result<(), ExportError> {
        match self {
            Self::Cb(mut out) | Self::Ccb(mut out) => out.flush().map_err(ExportError::Write),
            Self::Obp { mut csv, .. } => csv.flush().map_err(ExportError::Write),
        }
    }
}

fn csv_error(error: csv::Error) -> ExportError {
    ExportError::Write(error.into())
}

/// Shortest round-trip text, as in the JSON exports (`0.0025`, `1.2e-7`).
fn number(value: f64) -> String {
    serde_json::Number::from_f64(value).map_or_else(|| value.to_string(), |n| n.to_string())
}

/// VW costs are negative rewards; a missing reward is cost 0 (not −0).
fn cost(reward: f64) -> f64 {
    if reward == 0.0 { 0.0 } else { -reward }
}

// The DSJson shapes. Field order matters to VW's streaming parser: the `_label_*` fields must come
// before `c` (the label is attached when `c` closes) and `_outcomes` after it (it labels the slot
// examples `c` created), so these are structs, serialized in declaration order.

#[derive(Serialize)]
struct CbLine<'a> {
    #[serde(rename = "_label_cost")]
    label_cost: f64,
    #[serde(rename = "_label_probability")]
    label_probability: f64,
    #[serde(rename = "_label_Action")]
    label_action: usize,
    #[serde(rename = "_labelIndex")]
    label_index: usize,
    #[serde(rename = "Timestamp")]
    timestamp: &'a str,
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "EventId")]
    event_id: &'a str,
    a: Vec<usize>,
    c: Features<'a>,
    p: Vec<f64>,
    #[serde(rename = "_original_label_cost")]
    original_label_cost: f64,
}

#[derive(Serialize)]
struct CcbLine<'a> {
    #[serde(rename = "Timestamp")]
    timestamp: &'a str,
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "EventId")]
    event_id: &'a str,
    c: Features<'a>,
    #[serde(rename = "_outcomes")]
    outcomes: Vec<Outcome>,
}

/// `c`: the shared features (namespaces `Context` and `User`), one `_multi` example per action,
/// and for CCB one `_slots` example per free slot.
#[derive(Serialize)]
struct Features<'a> {
    #[serde(rename = "Context")]
    context: ContextFeatures<'a>,
    #[serde(rename = "User", skip_serializing_if = "Option::is_none")]
    user: Option<UserFeatures<'a>>,
    #[serde(rename = "_multi")]
    multi: Vec<ActionExample<'a>>,
    #[serde(rename = "_slots", skip_serializing_if = "Option::is_none")]
    slots: Option<Vec<SlotExample>>,
}

#[derive(Serialize)]
struct ContextFeatures<'a> {
    route: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
}

#[derive(Serialize)]
struct UserFeatures<'a> {
    unit: &'a str,
}

#[derive(Serialize)]
struct ActionExample<'a> {
    #[serde(rename = "_tag")]
    tag: &'a str,
    #[serde(rename = "Item")]
    item: ItemFeatures<'a>,
}

#[derive(Serialize)]
struct ItemFeatures<'a> {
    id: &'a str,
    model_rank: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
}

#[derive(Serialize)]
struct SlotExample {
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "Slot")]
    slot: SlotFeatures,
    /// The actions this slot could take, when fewer than the ones left by the slots above
    /// (`rand_pair` fills every slot below the first deterministically).
    #[serde(rename = "_inc", skip_serializing_if = "Option::is_none")]
    included: Option<Vec<usize>>,
}

#[derive(Serialize)]
struct SlotFeatures {
    /// A string, so that each position is its own feature (`position=2`), not a magnitude.
    position: String,
}

#[derive(Serialize)]
struct Outcome {
    #[serde(rename = "_label_cost")]
    label_cost: f64,
    #[serde(rename = "_id")]
    id: String,
    /// 0-based action indices, the chosen one first.
    #[serde(rename = "_a")]
    actions: Vec<usize>,
    #[serde(rename = "_p")]
    probabilities: Vec<f64>,
    #[serde(rename = "_original_label_cost")]
    original_label_cost: f64,
}

fn features(decision: &Exported, slots: Option<Vec<SlotExample>>) -> Features<'_> {
    Features {
        context: ContextFeatures {
            route: &decision.route,
            model: decision.model.as_deref(),
        },
        user: decision.unit.as_deref().map(|unit| UserFeatures { unit }),
        multi: decision
            .actions
            .iter()
            .map(|action| ActionExample {
                tag: &action.id,
                item: ItemFeatures {
                    id: &action.id,
                    model_rank: action.model_rank,
                    score: action.score,
                },
            })
            .collect(),
        slots,
    }
}

/// The slot's distribution with the chosen action first (its probability as logged), then the
/// others in the model's order.
fn chosen_first(slot: &FreeSlot) -> (Vec<usize>, Vec<f64>) {
    let rest = slot
        .distribution
        .iter()
        .filter(|(action, _)| *action != slot.chosen);
    let actions = std::iter::once(slot.chosen)
        .chain(rest.clone().map(|(action, _)| *action))
        .collect();
    let probabilities = std::iter::once(slot.p_conditional)
        .chain(rest.map(|(_, p)| *p))
        .collect();
    (actions, probabilities)
}

fn cb_line(decision: &Exported) -> CbLine<'_> {
    let first = &decision.slots[0];
    let (actions, probabilities) = chosen_first(first);
    CbLine {
        label_cost: cost(first.reward),
        label_probability: first.p_conditional,
        label_action: first.chosen + 1,
        label_index: first.chosen,
        timestamp: &decision.time,
        version: "1",
        event_id: &decision.request_id,
        a: actions.iter().map(|action| action + 1).collect(),
        c: features(decision, None),
        p: probabilities,
        original_label_cost: cost(first.reward),
    }
}

fn ccb_line(decision: &Exported) -> CcbLine<'_> {
    let slot_id = |slot: &FreeSlot| format!("position-{}", slot.position);
    let slots = decision
        .slots
        .iter()
        .enumerate()
        .map(|(k, slot)| SlotExample {
            id: slot_id(slot),
            slot: SlotFeatures {
                position: slot.position.to_string(),
            },
            included: (slot.distribution.len() < decision.actions.len() - k).then(|| {
                slot.distribution
                    .iter()
                    .map(|(action, _)| *action)
                    .collect()
            }),
        })
        .collect();
    let outcomes = decision
        .slots
        .iter()
        .map(|slot| {
            let (actions, probabilities) = chosen_first(slot);
            Outcome {
                label_cost: cost(slot.reward),
                id: slot_id(slot),
                actions,
                probabilities,
                original_label_cost: cost(slot.reward),
            }
        })
        .collect();
    CcbLine {
        timestamp: &decision.time,
        version: "1",
        event_id: &decision.request_id,
        c: features(decision, Some(slots)),
        outcomes,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::HeaderName;
    use serde_json::json;

    use super::*;
    use crate::config::exploration::{ExplorationRoute, Target};
    use crate::explore::route::Route;

    fn route(strategy: Strategy, adjust: impl FnOnce(&mut ExplorationRoute)) -> Arc<Route> {
        let mut config = ExplorationRoute {
            name: "recs".into(),
            path_prefix: "/recs".into(),
            target: Target::List {
                list: "/items".into(),
                id: "/id".into(),
                score: Some("/score".into()),
                pin: Some("/pinned".into()),
            },
            strategy,
            fixed_top: 1,
            candidates: 6,
            holdout: 0.0,
            randomize: 0.0,
            unit_header: HeaderName::from_static("x-user-id"),
            salt: Arc::from(&b"export-test-salt"[..]),
            shadow: false,
            opt_out_header: HeaderName::from_static("x-driftwatch-explore"),
            max_response_bytes: 1 << 20,
            catalog_size: None,
            diversity_window: 10,
            diversity_positions: None,
        };
        adjust(&mut config);
        Route::new(config)
    }

    /// A record of `route` exploring a list of `ids` (scores falling, nothing pinned unless
    /// `pinned` names the index), as the request path logs it.
    fn record(route: &Route, request_id: &str, ids: &[&str], pinned: Option<usize>) -> String {
        let items: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| json!({"id": id, "score": 10.0 - i as f64 * 0.5, "pinned": Some(i) == pinned}))
            .collect();
        let body = json!({ "items": items }).to_string();
        let explored = route.explore(body.as_bytes(), b"user-7", request_id.as_bytes(), false);
        json!({
            "schema": "driftwatch.record/v1",
            "id": request_id,
            "time": "2026-11-27T14:03:22.123456Z",
            "model": null,
            "request": {"body": {"large": [1, 2, 3]}},
            "exploration": explored.log,
        })
        .to_string()
    }

    const IDS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

    fn run(records: &str, rewards: Option<&str>, format: ExportFormat) -> (ExportStats, String) {
        let mut out = Vec::new();
        let mut rewards = rewards.map(str::as_bytes);
        let stats = export(
            records.as_bytes(),
            rewards.as_mut().map(|r| r as &mut dyn BufRead),
            format,
            &mut out,
        )
        .unwrap();
        (stats, String::from_utf8(out).unwrap())
    }

    fn shown_ids(record: &str) -> Vec<String> {
        let value: Value = serde_json::from_str(record).unwrap();
        value["exploration"]["shown"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn vw_cb_labels_the_first_free_slot_with_its_logged_propensity() {
        let route = route(Strategy::EpsilonGreedy { epsilon: 0.5 }, |_| {});
        let record = record(&route, "req-1", &IDS, None);
        let log: Value = serde_json::from_str::<Value>(&record).unwrap()["exploration"].clone();
        let first_free = &log["shown"][1];
        let rewards = format!(
            "{}\n{}\n",
            json!({"request_id": "req-1", "id": first_free["id"], "reward": 1.0, "time": "t"}),
            json!({"request_id": "req-1", "id": "a", "reward": 1.0, "time": "t"}),
        );
        let (stats, out) = run(&record, Some(&rewards), ExportFormat::VwCb);
        assert_eq!((stats.decisions, stats.rows), (1, 1));
        assert!(
            out.starts_with(r#"{"_label_cost":-1.0,"_label_probability":"#),
            "labels before c: {out}"
        );
        let line: Value = serde_json::from_str(out.trim_end()).unwrap();
        let multi = line["c"]["_multi"].as_array().unwrap();
        // Position 1 is fixed: the actions are the five other items of the window, model order.
        let ids: Vec<&str> = multi
            .iter()
            .map(|a| a["Item"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["b", "c", "d", "e", "f"]);
        let index = line["_labelIndex"].as_u64().unwrap() as usize;
        assert_eq!(line["_label_Action"], index + 1);
        assert_eq!(multi[index]["Item"]["id"], first_free["id"]);
        assert_eq!(line["_label_probability"], first_free["p_conditional"]);
        assert_eq!(line["a"][0], index + 1);
        assert_eq!(line["p"][0], first_free["p_conditional"]);
        let p: f64 = line["p"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .sum();
        assert!((p - 1.0).abs() < 1e-12, "p is the slot's distribution: {p}");
        let mut a: Vec<u64> = line["a"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_u64().unwrap())
            .collect();
        a.sort_unstable();
        assert_eq!(a, [1, 2, 3, 4, 5], "a permutation of the actions");
        assert_eq!(line["EventId"], "req-1");
        assert_eq!(line["Timestamp"], "2026-11-27T14:03:22.123456Z");
        assert_eq!(line["Version"], "1");
        assert_eq!(line["c"]["Context"], json!({"route": "recs"}));
        assert!(
            line["c"]["User"]["unit"]
                .as_str()
                .unwrap()
                .starts_with("hmac-sha256:")
        );
        assert_eq!(
            (stats.rewards.joined, stats.rewards.unused),
            (1, 1),
            "the fixed item's reward is not part of the decision"
        );
    }

    #[test]
    fn vw_ccb_has_one_outcome_per_free_slot_and_restricts_rand_pair_slots() {
        let route = route(Strategy::RandPair, |_| {});
        let record = record(&route, "req-2", &IDS, Some(3));
        let shown = shown_ids(&record);
        let (stats, out) = run(&record, None, ExportFormat::VwCcb);
        assert_eq!(stats.decisions, 1);
        assert!(out.find("\"c\":").unwrap() < out.find("\"_outcomes\":").unwrap());
        let line: Value = serde_json::from_str(out.trim_end()).unwrap();
        let multi: Vec<&str> = line["c"]["_multi"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["Item"]["id"].as_str().unwrap())
            .collect();
        // Window 6, fixed_top 1, "d" (position 4) pinned: free positions 2, 3, 5, 6.
        assert_eq!(multi, ["b", "c", "e", "f"]);
        let slots = line["c"]["_slots"].as_array().unwrap();
        let outcomes = line["_outcomes"].as_array().unwrap();
        assert_eq!(slots.len(), 4);
        for (k, (position, outcome)) in [2, 3, 5, 6].iter().zip(outcomes).enumerate() {
            assert_eq!(slots[k]["_id"], format!("position-{position}"));
            assert_eq!(slots[k]["Slot"]["position"], position.to_string());
            let chosen = outcome["_a"][0].as_u64().unwrap() as usize;
            assert_eq!(multi[chosen], shown[position - 1]);
            assert_eq!(outcome["_label_cost"], 0.0);
            if k == 0 {
                assert_eq!(outcome["_p"], json!([0.25, 0.25, 0.25, 0.25]));
            } else {
                // Given the first slot, rand_pair fills the others deterministically.
                assert_eq!(outcome["_p"], json!([1.0]));
            }
            if k == 1 || k == 2 {
                assert_eq!(
                    slots[k]["_inc"],
                    json!([chosen]),
                    "fewer than the actions left"
                );
            } else {
                assert!(slots[k].get("_inc").is_none(), "all the actions left");
            }
        }
    }

    #[test]
    fn obp_rows_quote_ids_and_fall_back_to_the_conditional_for_softmax() {
        let route = route(Strategy::Softmax { temperature: 0.7 }, |r| r.fixed_top = 0);
        let ids = ["x,1", "say \"hi\"", "z", "w"];
        let record = record(&route, "req-3", &ids, None);
        let shown = shown_ids(&record);
        let rewards = json!({"request_id": "req-3", "id": shown[2], "reward": 0.5}).to_string();
        let (stats, out) = run(&record, Some(&rewards), ExportFormat::Obp);
        assert_eq!((stats.decisions, stats.rows), (1, 4));
        let mut reader = csv::Reader::from_reader(out.as_bytes());
        assert_eq!(reader.headers().unwrap(), OBP_COLUMNS.as_slice());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let log: Value = serde_json::from_str::<Value>(&record).unwrap()["exploration"].clone();
        for (position, row) in rows.iter().enumerate() {
            let logged = &log["shown"][position];
            assert_eq!(
                &row[2], shown[position],
                "ids with commas and quotes survive"
            );
            assert_eq!(row[3], (position + 1).to_string());
            let propensity: f64 = row[5].parse().unwrap();
            assert_eq!(
                propensity,
                logged["p_conditional"].as_f64().unwrap(),
                "no closed-form marginal under softmax"
            );
            assert_eq!(&row[5], &row[10]);
            assert_eq!(
                row[7].parse::<f64>().unwrap(),
                log["p_joint"].as_f64().unwrap()
            );
            let (click, reward) = if position == 2 {
                ("1", "0.5")
            } else {
                ("0", "0.0")
            };
            assert_eq!((&row[4], &row[9]), (click, reward));
            assert_eq!(&row[11], "0");
            assert_eq!(
                row[12],
                position.to_string(),
                "actions numbered as they appear"
            );
        }
    }

    #[test]
    fn records_that_cannot_be_exported_are_counted_by_reason() {
        let explored = route(Strategy::RandTopN, |_| {});
        let good = record(&explored, "ok", &IDS, None);
        let holdout = record(
            &route(Strategy::RandTopN, |r| r.holdout = 1.0),
            "h",
            &IDS,
            None,
        );
        let shadow = record(
            &route(Strategy::RandTopN, |r| r.shadow = true),
            "s",
            &IDS,
            None,
        );
        let opted_out = json!({"id": "o", "time": "t", "exploration": {
            "route": "recs", "bucket": "explore", "unit": "hmac-sha256:00", "outcome": "opt_out"}})
        .to_string();
        let plain = json!({"id": "p", "time": "t", "exploration": null}).to_string();
        let all_fixed = record(
            &route(Strategy::RandPair, |r| r.fixed_top = 8),
            "f",
            &IDS,
            None,
        );
        // The same decision with two shown items swapped: its seed no longer explains it.
        let mut tampered: Value =
            serde_json::from_str(&record(&explored, "t", &IDS, None)).unwrap();
        let shown = tampered["exploration"]["shown"].as_array_mut().unwrap();
        let (second, third) = (shown[1]["id"].clone(), shown[2]["id"].clone());
        shown[1]["id"] = third;
        shown[2]["id"] = second;
        let records = [
            good.as_str(),
            &holdout,
            &shadow,
            &opted_out,
            &plain,
            &all_fixed,
            &tampered.to_string(),
            "{\"id\": \"torn",
            "",
            &good,
        ]
        .join("\n");
        for format in ExportFormat::ALL {
            let (stats, _) = run(&records, None, format);
            assert_eq!(stats.records, 9, "{format}: the empty line is not a record");
            assert_eq!(stats.decisions, 1, "{format}");
            let expected: BTreeMap<String, u64> = [
                ("duplicate", 1),
                ("holdout", 1),
                ("malformed", 1),
                ("no_free_slot", 1),
                ("not_exploration", 1),
                ("opt_out", 1),
                ("replay_mismatch", 1),
                ("shadow", 1),
            ]
            .into_iter()
            .map(|(reason, n)| (reason.to_owned(), n))
            .collect();
            assert_eq!(stats.skipped, expected, "{format}");
        }
    }

    #[test]
    fn rewards_join_once_per_item_and_the_rest_is_counted() {
        let route = route(Strategy::RandTopN, |r| r.fixed_top = 0);
        let record = record(&route, "req-4", &IDS[..3], None);
        let shown = shown_ids(&record);
        let lines = [
            json!({"request_id": "req-4", "id": shown[0], "reward": 2.0}).to_string(),
            json!({"request_id": "req-4", "id": shown[0], "reward": 5.0}).to_string(),
            json!({"request_id": "req-4", "id": shown[1], "reward": 0.0}).to_string(),
            json!({"request_id": "req-4", "id": "not-shown", "reward": 1.0}).to_string(),
            json!({"request_id": "elsewhere", "id": "a", "reward": 1.0}).to_string(),
            json!({"request_id": "req-4", "reward": 1.0}).to_string(),
            "not json".to_owned(),
        ]
        .join("\n");
        let (stats, out) = run(&record, Some(&lines), ExportFormat::VwCcb);
        assert_eq!(
            stats.rewards,
            RewardStats {
                lines: 7,
                malformed: 2,
                duplicate: 1,
                joined: 2,
                unused: 1,
                unmatched: 1,
            }
        );
        let line: Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(line["_outcomes"][0]["_label_cost"], -2.0, "the first wins");
        assert_eq!(line["_outcomes"][1]["_label_cost"], 0.0);
        // vw-cb uses the first free slot only: the second slot's reward is unused there.
        let (stats, _) = run(&record, Some(&lines), ExportFormat::VwCb);
        assert_eq!((stats.rewards.joined, stats.rewards.unused), (1, 2));
    }

    #[test]
    fn formats_parse_from_their_names() {
        for format in ExportFormat::ALL {
            assert_eq!(format.as_str().parse::<ExportFormat>(), Ok(format));
        }
        assert!(
            "vw".parse::<ExportFormat>()
                .unwrap_err()
                .to_string()
                .contains("vw-cb, vw-ccb or obp")
        );
    }
}
