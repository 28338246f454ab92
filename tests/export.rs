//! `driftwatch export` end to end: decisions recorded by a running driftwatch (every strategy,
//! pins, the randomize and holdout buckets, shadow, opt-out, a route without exploration) and
//! rewards sent through its feedback API are exported in each format. The numbers are the logged
//! ones, every logged seed replays its shown list, the rewards are joined, and the files load in
//! the real tools: Vowpal Wabbit (the `vowpalwabbit` package: its file driver and its parser) and,
//! for the Open Bandit Pipeline, pandas against OBP's documented data schema
//! (tests/fixtures/export/check_vw.py, check_obp.py, run with the test-tools venv's python).

mod support;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use driftwatch::config::exploration::{
    BucketsSection, ExplorationMatch, ExplorationSection, StrategyName, UnitSection,
};
use driftwatch::config::units::ByteSize;
use driftwatch::explore::export::{self, ExportFormat, ExportStats, OBP_COLUMNS, RewardStats};
use driftwatch::explore::strategy::{self, Candidate, Strategy};
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use support::{MockUpstream, Running, http1_client, test_config, wait_for_records, with_file_sink};

fn route(name: &str, adjust: impl FnOnce(&mut ExplorationSection)) -> ExplorationSection {
    let mut section = ExplorationSection {
        name: name.into(),
        match_: ExplorationMatch {
            path_prefix: "/recs".into(),
        },
        list: "/items".into(),
        id: "/id".into(),
        score: Some("/score".into()),
        pin: None,
        open_inference: None,
        strategy: StrategyName::RandTopN,
        epsilon: 0.05,
        temperature: 1.0,
        fixed_top: 1,
        candidates: 8,
        buckets: BucketsSection {
            holdout: 0.0,
            randomize: 0.0,
        },
        unit: UnitSection {
            header: "x-user-id".into(),
        },
        salt_file: None,
        shadow: false,
        opt_out_header: "x-driftwatch-explore".into(),
        max_response_bytes: ByteSize(1 << 20),
        catalog_size: None,
        diversity_window: 50,
        diversity_positions: None,
    };
    adjust(&mut section);
    section
}

/// One driftwatch run: a route, how many users ask, and how long the upstream's list is.
struct Scenario {
    section: ExplorationSection,
    users: usize,
    list: usize,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            section: route("eg", |r| {
                r.strategy = StrategyName::EpsilonGreedy;
                r.epsilon = 0.4;
                // The mock pins item-3 (position 4), inside the window.
                r.pin = Some("/meta/pinned".into());
                r.buckets = BucketsSection {
                    holdout: 0.15,
                    randomize: 0.25,
                };
            }),
            users: 60,
            list: 12,
        },
        Scenario {
            section: route("softmax", |r| {
                r.strategy = StrategyName::Softmax;
                r.temperature = 2.0;
                r.fixed_top = 0;
                r.candidates = 6;
            }),
            users: 20,
            list: 10,
        },
        Scenario {
            section: route("pair", |r| r.strategy = StrategyName::RandPair),
            users: 20,
            list: 10,
        },
        Scenario {
            section: route("topn", |r| {
                r.fixed_top = 2;
                r.candidates = 5;
            }),
            users: 20,
            list: 5,
        },
        Scenario {
            section: route("shadow", |r| r.shadow = true),
            users: 5,
            list: 10,
        },
    ]
}

async fn send(request: Request<Full<Bytes>>) -> (u16, Value) {
    let response = http1_client().request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = support::body_bytes(response).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The 0-based free positions of a logged decision, as the strategies define them.
fn free_positions(log: &Value) -> Vec<usize> {
    let candidates = log["candidates"].as_array().unwrap();
    // rand_top_n shuffles the whole window: its fixed_top holds nothing (strategy::fixed_slots).
    let fixed_top = if log["strategy"] == "rand_top_n" {
        0
    } else {
        log["params"]["fixed_top"].as_u64().unwrap() as usize
    };
    let window = (log["params"]["candidates"].as_u64().unwrap() as usize).min(candidates.len());
    (fixed_top.min(window)..window)
        .filter(|&p| candidates[p]["pinned"] != true)
        .collect()
}

fn shown_id(log: &Value, position: usize) -> String {
    log["shown"][position]["id"].as_str().unwrap().to_owned()
}

/// What the test sent: the records file, the rewards file, and the reward of every (request,
/// item) as the export must join it (the first one sent).
struct Recorded {
    records: PathBuf,
    rewards: PathBuf,
    expected: HashMap<(String, String), f64>,
    reward_lines: u64,
    duplicates: u64,
}

/// Runs driftwatch once per scenario, sends traffic and rewards, and gathers every record.
async fn record(dir: &Path) -> Recorded {
    let mock = MockUpstream::start().await;
    let records = dir.join("records.jsonl");
    let rewards = dir.join("rewards.jsonl");
    let mut all_records = String::new();
    let mut expected = HashMap::new();
    let (mut reward_lines, mut duplicates) = (0, 0);
    for (run, scenario) in scenarios().into_iter().enumerate() {
        let name = scenario.section.name.clone();
        let run_records = dir.join(format!("records-{name}.jsonl"));
        let mut file = with_file_sink(test_config(mock.addr), &run_records);
        file.exploration = vec![scenario.section];
        file.feedback.rewards_file = Some(rewards.to_string_lossy().into_owned());
        let proxy = Running::start(file).await;
        let path = format!("/recs?n={}", scenario.list);
        for user in 0..scenario.users {
            let request = Request::get(proxy.url(&path))
                .header("x-user-id", format!("user-{user}"))
                .header("x-request-id", format!("{name}-{user}"));
            let (status, _) = send(request.body(Full::new(Bytes::new())).unwrap()).await;
            assert_eq!(status, 200);
        }
        let mut sent = scenario.users;
        if run == 0 {
            // An opted-out user, and an exchange outside any exploration route.
            let opt_out = Request::get(proxy.url(&path))
                .header("x-user-id", "user-0")
                .header("x-driftwatch-explore", "off")
                .header("x-request-id", "opted-out");
            send(opt_out.body(Full::new(Bytes::new())).unwrap()).await;
            let echo = Request::post(proxy.url("/echo")).header("x-request-id", "plain");
            send(echo.body(Full::new(Bytes::from_static(b"{}"))).unwrap()).await;
            sent += 2;
        }
        let logged = wait_for_records(&run_records, sent).await;
        assert_eq!(logged.len(), sent, "{name}: every exchange recorded");

        // Rewards through the feedback API, as a click tracker would send them.
        let mut batch = Vec::new();
        for (user, record) in logged.iter().enumerate() {
            let log = &record["exploration"];
            if log["shown"].is_null() {
                continue;
            }
            let request_id = record["id"].as_str().unwrap().to_owned();
            let free = free_positions(log);
            let mut given: Vec<(String, f64)> = Vec::new();
            if user % 3 == 0 {
                given.push((shown_id(log, free[0]), 1.0));
            }
            if user % 4 == 1 && free.len() > 1 {
                given.push((shown_id(log, free[1]), 2.0));
            }
            if user % 5 == 2 {
                given.push((shown_id(log, 0), 0.5));
            }
            if user % 7 == 3 {
                // Sent twice: the first one counts.
                given.push((shown_id(log, free[0]), 4.0));
                given.push((shown_id(log, free[0]), 8.0));
            }
            for (item, reward) in &given {
                reward_lines += 1;
                match expected.entry((request_id.clone(), item.clone())) {
                    Entry::Occupied(_) => duplicates += 1,
                    Entry::Vacant(slot) => {
                        slot.insert(*reward);
                    }
                }
            }
            if !given.is_empty() {
                let rewards: Vec<Value> = given
                    .iter()
                    .map(|(item, reward)| json!({"id": item, "reward": reward}))
                    .collect();
                batch.push(json!({"request_id": request_id, "rewards": rewards}));
            }
        }
        if run == 0 {
            batch.push(json!({"request_id": "never-recorded", "rewards": [{"id": "item-1", "reward": 1.0}]}));
            expected.insert(("never-recorded".into(), "item-1".into()), 1.0);
            reward_lines += 1;
        }
        let feedback = Request::post(proxy.admin_url("/api/v1/feedback"))
            .body(Full::new(Bytes::from(Value::from(batch).to_string())))
            .unwrap();
        let (status, answer) = send(feedback).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["invalid"], 0, "{answer}");
        proxy.stop().await;
        all_records.push_str(&std::fs::read_to_string(&run_records).unwrap());
    }
    std::fs::write(&records, all_records).unwrap();
    Recorded {
        records,
        rewards,
        expected,
        reward_lines,
        duplicates,
    }
}

fn export_to(recorded: &Recorded, format: ExportFormat, out: &Path) -> ExportStats {
    let records = BufReader::new(std::fs::File::open(&recorded.records).unwrap());
    let mut rewards = BufReader::new(std::fs::File::open(&recorded.rewards).unwrap());
    let mut file = std::fs::File::create(out).unwrap();
    export::export(records, Some(&mut rewards), format, &mut file).unwrap()
}

fn tools_python() -> PathBuf {
    let python = support::kafka::tools_venv().join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test, which creates the test-tools venv from \
         tests/tools/requirements.txt (vowpalwabbit, pandas)",
        python.display()
    );
    python
}

/// Runs a checker of tests/fixtures/export with the test-tools python; returns its output.
fn check(script: &str, args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/export")
        .join(script);
    Command::new(tools_python())
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("run {}: {error}", script.display()))
}

fn assert_checks(script: &str, args: &[&str]) -> Value {
    let output = check(script, args);
    assert!(
        output.status.success(),
        "{script} {args:?} failed (run scripts/test to install the test tools):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{script} printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// The decision of a logged explored (or shadow) record, replayed from its seed.
fn replay(log: &Value) -> strategy::Decision {
    let params = &log["params"];
    let strategy = match log["strategy"].as_str().unwrap() {
        "epsilon_greedy" => Strategy::EpsilonGreedy {
            epsilon: params["epsilon"].as_f64().unwrap(),
        },
        "softmax" => Strategy::Softmax {
            temperature: params["temperature"].as_f64().unwrap(),
        },
        "rand_pair" => Strategy::RandPair,
        "rand_top_n" => Strategy::RandTopN,
        other => panic!("strategy {other}"),
    };
    let candidates: Vec<Candidate> = log["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Candidate {
            score: c["score"].as_f64(),
            pinned: c["pinned"] == true,
        })
        .collect();
    let seed = log["seed"].as_str().unwrap().trim_start_matches("0x");
    strategy::decide(
        strategy,
        &candidates,
        params["fixed_top"].as_u64().unwrap() as usize,
        params["candidates"].as_u64().unwrap() as usize,
        u64::from_str_radix(seed, 16).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_carry_the_logged_decisions_and_load_in_vw_and_obp() {
    let dir = tempfile::tempdir().unwrap();
    let recorded = record(dir.path()).await;
    let records: Vec<Value> = read_lines(&recorded.records);

    // The logged seeds replay the shown lists, for every decision that was made.
    let mut explored: BTreeMap<String, &Value> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut strategies = HashSet::new();
    for record in &records {
        let log = &record["exploration"];
        let outcome = log["outcome"].as_str().unwrap_or("not_exploration");
        *outcomes.entry(outcome.to_owned()).or_default() += 1;
        if outcome != "explored" && outcome != "shadow" {
            continue;
        }
        let decision = replay(log);
        let shown: Vec<String> = (0..decision.order.len())
            .map(|p| shown_id(log, p))
            .collect();
        let replayed: Vec<String> = decision
            .order
            .iter()
            .map(|&item| format!("item-{item}"))
            .collect();
        assert_eq!(
            shown, replayed,
            "{}: the seed replays the list",
            record["id"]
        );
        for (slot, logged) in decision.slots.iter().zip(log["shown"].as_array().unwrap()) {
            assert!(close(
                slot.p_conditional,
                logged["p_conditional"].as_f64().unwrap()
            ));
        }
        if outcome == "explored" {
            strategies.insert(log["strategy"].as_str().unwrap().to_owned());
            explored.insert(record["id"].as_str().unwrap().to_owned(), log);
        }
    }
    assert_eq!(
        strategies.len(),
        4,
        "every strategy was explored: {strategies:?}"
    );
    for outcome in ["holdout", "shadow", "opt_out", "not_exploration"] {
        assert!(outcomes.contains_key(outcome), "{outcome} in {outcomes:?}");
    }
    assert!(
        records
            .iter()
            .any(|r| r["exploration"]["bucket"] == "randomize"),
        "the randomize bucket was hit"
    );
    let mut expected_skips = outcomes.clone();
    expected_skips.remove("explored");

    // Which rewards the export can use, per format.
    let rewards_of = |request: &str, item: &str| {
        recorded
            .expected
            .get(&(request.to_owned(), item.to_owned()))
            .copied()
    };
    let expected_rewards = |used: &dyn Fn(&Value, &str) -> bool| {
        let mut stats = RewardStats {
            lines: recorded.reward_lines,
            duplicate: recorded.duplicates,
            ..RewardStats::default()
        };
        for (request, item) in recorded.expected.keys() {
            match explored.get(request) {
                None => stats.unmatched += 1,
                Some(log) if used(log, item) => stats.joined += 1,
                Some(_) => stats.unused += 1,
            }
        }
        stats
    };
    let in_free_slots = |log: &Value, item: &str, slots: usize| {
        free_positions(log)
            .into_iter()
            .take(slots)
            .any(|p| shown_id(log, p) == item)
    };

    // vw-cb: one line per explored decision, labelled with the first free slot.
    let cb_path = dir.path().join("export.cb.json");
    let stats = export_to(&recorded, ExportFormat::VwCb, &cb_path);
    assert_eq!(stats.records, records.len() as u64);
    assert_eq!(stats.decisions, explored.len() as u64);
    assert_eq!(stats.skipped, expected_skips);
    assert_eq!(
        stats.rewards,
        expected_rewards(&|log, item| in_free_slots(log, item, 1))
    );
    let lines = read_lines(&cb_path);
    assert_eq!(lines.len(), explored.len());
    let mut rewarded = 0;
    for line in &lines {
        let id = line["EventId"].as_str().unwrap();
        let log = explored[id];
        let first = free_positions(log)[0];
        let logged = &log["shown"][first];
        let multi = line["c"]["_multi"].as_array().unwrap();
        let index = line["_labelIndex"].as_u64().unwrap() as usize;
        assert_eq!(multi[index]["Item"]["id"], logged["id"], "{line}");
        assert_eq!(multi[index]["Item"]["model_rank"], logged["model_rank"]);
        assert_eq!(
            line["_label_probability"], logged["p_conditional"],
            "{line}"
        );
        let reward = rewards_of(id, logged["id"].as_str().unwrap()).unwrap_or(0.0);
        rewarded += usize::from(reward != 0.0);
        assert_eq!(line["_label_cost"].as_f64().unwrap(), -reward, "{line}");
        let actions: Vec<&Value> = free_positions(log)
            .into_iter()
            .map(|p| &log["candidates"][p]["id"])
            .collect();
        let multi_ids: Vec<&Value> = multi.iter().map(|a| &a["Item"]["id"]).collect();
        assert_eq!(multi_ids, actions, "the free items, in the model's order");
        let p: f64 = line["p"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .sum();
        assert!((p - 1.0).abs() < 1e-12, "{line}");
        assert_eq!(line["c"]["Context"]["route"], log["route"]);
        assert_eq!(line["c"]["User"]["unit"], log["unit"]);
    }
    assert!(rewarded > 5, "rewards were joined: {rewarded}");

    // vw-ccb: one outcome per free slot, each with its conditional propensity.
    let ccb_path = dir.path().join("export.ccb.json");
    let stats = export_to(&recorded, ExportFormat::VwCcb, &ccb_path);
    assert_eq!(stats.decisions, explored.len() as u64);
    assert_eq!(stats.skipped, expected_skips);
    assert_eq!(
        stats.rewards,
        expected_rewards(&|log, item| in_free_slots(log, item, usize::MAX))
    );
    for line in read_lines(&ccb_path) {
        let id = line["EventId"].as_str().unwrap();
        let log = explored[id];
        let free = free_positions(log);
        let multi = line["c"]["_multi"].as_array().unwrap();
        let outcomes = line["_outcomes"].as_array().unwrap();
        assert_eq!(outcomes.len(), free.len());
        assert_eq!(line["c"]["_slots"].as_array().unwrap().len(), free.len());
        let mut joint = 1.0;
        for (&position, outcome) in free.iter().zip(outcomes) {
            let logged = &log["shown"][position];
            let chosen = outcome["_a"][0].as_u64().unwrap() as usize;
            assert_eq!(multi[chosen]["Item"]["id"], logged["id"]);
            assert_eq!(outcome["_p"][0], logged["p_conditional"]);
            joint *= outcome["_p"][0].as_f64().unwrap();
            let reward = rewards_of(id, logged["id"].as_str().unwrap()).unwrap_or(0.0);
            assert_eq!(outcome["_label_cost"].as_f64().unwrap(), -reward);
        }
        assert!(
            close(joint, log["p_joint"].as_f64().unwrap()),
            "{id}: the free slots' conditionals multiply to the logged joint"
        );
    }

    // obp: one row per free slot, the logged propensities, clicks from the rewards.
    let obp_path = dir.path().join("export.obp.csv");
    let stats = export_to(&recorded, ExportFormat::Obp, &obp_path);
    assert_eq!(stats.decisions, explored.len() as u64);
    let free_slots: usize = explored.values().map(|log| free_positions(log).len()).sum();
    assert_eq!(stats.rows, free_slots as u64);
    assert_eq!(
        stats.rewards,
        expected_rewards(&|log, item| in_free_slots(log, item, usize::MAX))
    );
    let mut reader = csv::Reader::from_path(&obp_path).unwrap();
    assert_eq!(reader.headers().unwrap(), OBP_COLUMNS.as_slice());
    let mut rows = 0;
    for row in reader.deserialize::<HashMap<String, String>>() {
        let row = row.unwrap();
        let log = explored[&row["request_id"]];
        let position: usize = row["position"].parse().unwrap();
        let logged = &log["shown"][position - 1];
        assert_eq!(row["item_id"], logged["id"].as_str().unwrap());
        let propensity = logged["p_item_position"]
            .as_f64()
            .or_else(|| {
                assert_eq!(log["strategy"], "softmax", "only softmax has no marginal");
                logged["p_conditional"].as_f64()
            })
            .unwrap();
        for (column, value) in [
            ("propensity_score", propensity),
            (
                "pscore_conditional",
                logged["p_conditional"].as_f64().unwrap(),
            ),
            ("pscore_cascade", logged["p_cascade"].as_f64().unwrap()),
            ("pscore_joint", log["p_joint"].as_f64().unwrap()),
        ] {
            assert_eq!(
                row[column].parse::<f64>().unwrap(),
                value,
                "{column}: {row:?}"
            );
        }
        let reward = rewards_of(&row["request_id"], &row["item_id"]).unwrap_or(0.0);
        assert_eq!(row["reward"].parse::<f64>().unwrap(), reward);
        assert_eq!(row["click"], if reward > 0.0 { "1" } else { "0" });
        assert_eq!(row["model_rank"], logged["model_rank"].to_string());
        rows += 1;
    }
    assert_eq!(rows, free_slots);

    // The real tools.
    let cb = assert_checks("check_vw.py", &["cb", cb_path.to_str().unwrap()]);
    assert_eq!(cb["events"], explored.len());
    let ccb = assert_checks("check_vw.py", &["ccb", ccb_path.to_str().unwrap()]);
    assert_eq!(ccb["labelled_examples"], free_slots);
    let obp = assert_checks("check_obp.py", &[obp_path.to_str().unwrap()]);
    assert_eq!(obp["rows"], free_slots);
    assert_eq!(obp["slates"], explored.len());

    // And the checkers do fail: VW reads a CCB line whose `_outcomes` comes before `c` (key order
    // a JSON library might pick) as unlabelled.
    let first: serde_json::Map<String, Value> = serde_json::from_str(
        std::fs::read_to_string(&ccb_path)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let sorted: BTreeMap<String, Value> = first.into_iter().collect();
    let bad = dir.path().join("sorted.ccb.json");
    std::fs::write(&bad, serde_json::to_string(&sorted).unwrap()).unwrap();
    let output = check("check_vw.py", &["ccb", bad.to_str().unwrap()]);
    assert!(
        !output.status.success(),
        "check_vw.py accepted outcomes before c: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}
