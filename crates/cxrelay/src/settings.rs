//! Loading settings: the optional TOML file, then environment overrides.

use std::path::Path;

use anyhow::Context;
use cxrelay_core::config::{ConfigError, Settings};

/// Reads `path` (if given) and applies the environment.
pub fn load(path: Option<&Path>) -> anyhow::Result<Settings> {
    let base = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
            Settings::from_toml(&text).map_err(|e| match e {
                // `config file x.toml: line 3, column 1: …` rather than `in x.toml: config file: …`.
                ConfigError::File(detail) => anyhow::anyhow!("config file {}: {detail}", p.display()),
                other => anyhow::Error::new(other).context(format!("in {}", p.display())),
            })?
        }
        None => Settings::default(),
    };
    Ok(base.with_env(|k| std::env::var(k).ok())?)
}
