//! Where `DRIFTWATCH_*` variables come from. The binary reads the process environment; tests pass
//! a map, so no test ever sets a process-wide variable.

use std::collections::HashMap;

pub trait EnvSource {
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// The variable for a flag: `--admin-listen` → `DRIFTWATCH_ADMIN_LISTEN`.
pub fn variable_for(flag: &str) -> String {
    format!("DRIFTWATCH_{}", flag.replace('-', "_").to_ascii_uppercase())
}
