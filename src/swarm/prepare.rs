//! Preparing a deployed app for the head before the in-place upgrade, the way an operator
//! upgrading by hand does: copy the new lines of the head's `.env.sample` into the app env
//! (keeping their own values for keys they already have), then generate the secrets the head
//! adds (`abra app secret generate`). Without this, a pull request that adds a secret or a
//! variable could never pass the upgrade tier.

use std::path::Path;

use xshell::Shell;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::recipe::compose::Compose;
use crate::recipe::env_file::EnvFile;
use crate::recipe::load;
use crate::recipe::secrets::AppSecret;
use crate::run::state::RunState;
use crate::swarm::docker;
use crate::swarm::driver::Driver;

/// What the preparation did or could not do.
#[derive(Debug, Clone, Default)]
pub struct Preparation {
    /// Keys of the head's `.env.sample` that the app env lacked, now added.
    pub added_keys: Vec<String>,
    /// Swarm names of the secrets generated for the head.
    pub generated: Vec<String>,
    /// Secrets the head needs that are marked `generate=false`: an operator's values, which a
    /// CI run cannot provide. The upgrade cannot be tested then.
    pub operator_secrets: Vec<AppSecret>,
    /// The head's compose as the redeploy will read it: with the prepared app env.
    pub compose: Compose,
}

impl Preparation {
    /// One clause for the op's detail, or `None` when nothing needed doing.
    pub fn summary(&self) -> Option<String> {
        let mut parts = vec![];
        if !self.added_keys.is_empty() {
            parts.push(format!("added {} to the app env", self.added_keys.join(", ")));
        }
        if !self.generated.is_empty() {
            parts.push(format!("generated secret {}", self.generated.join(", ")));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Prepares the app for the tree checked out in the driver's recipe dir (the head).
pub fn for_head(driver: &dyn Driver, sh: &Shell, state: &RunState, progress: &Progress) -> Result<Preparation> {
    let dir = driver.recipe_dir();
    let env_path = state.env_file.clone().ok_or_else(|| Error::bad_input("the run-state has no env_file"))?;
    // Made from the recipe's sample (and edited by its hooks): bad content is the recipe's fault.
    let mut app_env = EnvFile::read(&env_path).map_err(Error::recipe_fault)?;
    let sample = load::env_sample(&dir)?;
    let added_keys = app_env.add_missing(&sample);
    if !added_keys.is_empty() {
        append_lines(&env_path, &app_env, &added_keys)?;
        progress.log(format!("added the head's new env keys to the app env: {}", added_keys.join(", ")));
    }
    let compose = load::load_with_app_env(&dir, &app_env, state)?;
    let existing = docker::objects(sh, crate::run::naming::ObjectKind::Secret, &state.stack)?;
    let mut prep = Preparation { added_keys, compose, ..Default::default() };
    for secret in crate::recipe::secrets::app_secrets(&prep.compose, &state.stack, &app_env) {
        if existing.contains(&secret.name) {
            continue;
        }
        if !secret.hints.generate {
            prep.operator_secrets.push(secret);
            continue;
        }
        driver.generate_secret(sh, state, &secret, progress)?;
        prep.generated.push(secret.name);
    }
    Ok(prep)
}

/// Appends `keys` of `env` to the file as `KEY=VALUE # hint` lines, leaving every other line of
/// it (abra's or the operator's) as it was.
fn append_lines(path: &Path, env: &EnvFile, keys: &[String]) -> Result<()> {
    let mut text = fs_err::read_to_string(path)?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for k in keys {
        if let Some(line) = env.render_var(k) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    fs_err::write(path, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sample_keys_are_appended_and_existing_lines_stay_as_they_were() {
        let dir = std::env::temp_dir().join(format!("ccci-prepare-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join("app.env");
        let before = "# the operator's notes\nTYPE=newsecret:1.0.0+1\nDOMAIN=a.example\nLOG_LEVEL=debug";
        fs_err::write(&path, before).unwrap();
        let mut env = EnvFile::read(&path).unwrap();
        let sample = EnvFile::parse(
            "TYPE=newsecret\nDOMAIN=newsecret.example.com\nLOG_LEVEL=info\nSECRET_API_KEY_VERSION=v1 # length=48\n",
            ".env.sample",
        )
        .unwrap();
        let added = env.add_missing(&sample);
        assert_eq!(added, ["SECRET_API_KEY_VERSION"]);
        append_lines(&path, &env, &added).unwrap();
        let after = fs_err::read_to_string(&path).unwrap();
        fs_err::remove_dir_all(&dir).unwrap();
        assert_eq!(after, format!("{before}\nSECRET_API_KEY_VERSION=v1 # length=48\n"));
        let reread = EnvFile::parse(&after, "app.env").unwrap();
        assert_eq!(reread.get("LOG_LEVEL"), Some("debug"), "the operator's value is kept");
        assert_eq!(reread.get("DOMAIN"), Some("a.example"));
        assert_eq!(reread.hint("SECRET_API_KEY_VERSION"), Some("length=48"));
    }
}
