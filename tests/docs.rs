//! The documentation stays true: every key of the generated config schema is documented in
//! docs/configuration.md, and the README names the test command `.ci/run` runs.

use std::collections::BTreeSet;

use driftwatch::config::ConfigFile;
use serde_json::Value;

/// Dotted paths of every leaf key in the schema (`upstream.connect_timeout`).
fn leaf_keys(schema: &Value, node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    let node = match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/$defs/");
            &schema["$defs"][name]
        }
        None => node,
    };
    match node.get("properties").and_then(Value::as_object) {
        Some(properties) => {
            for (key, child) in properties {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_keys(schema, child, &path, out);
            }
        }
        None => {
            out.insert(prefix.to_owned());
        }
    }
}

#[test]
fn every_config_key_is_documented() {
    let schema = ConfigFile::json_schema();
    let mut keys = BTreeSet::new();
    leaf_keys(&schema, &schema, "", &mut keys);
    assert!(keys.contains("upstream.connect_timeout"), "{keys:?}");
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|key| !docs.contains(&format!("### `{key}`")))
        .collect();
    assert!(missing.is_empty(), "undocumented config keys: {missing:?}");
}

#[test]
fn ci_runs_the_readme_test_command() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let ci = std::fs::read_to_string(format!("{root}/.ci/run")).unwrap();
    assert!(
        readme.contains("\nscripts/test\n"),
        "README shows the test command"
    );
    assert!(
        ci.lines().any(|line| line.trim() == "scripts/test"),
        ".ci/run calls it"
    );
}
