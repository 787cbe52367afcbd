//! The abra CLI, as `abra-contract.md` describes it: one function per verb, every call with
//! `--no-input` and `--offline` (ccci stages the recipe itself), a per-run `ABRA_DIR`, and a probe
//! of `--help` for every flag used, so a drifted abra stops the run before it creates anything.
//!
//! The argv and environment of each call are built by pure functions so the contract tests can
//! pin them exactly.

use std::path::{Path, PathBuf};

use xshell::Shell;

use crate::error::{Error, Kind, Result};
use crate::naming::{Domain, RecipeName};
use crate::process::{Output, capture};

/// The flags every call carries: never prompt, never fetch.
const ALWAYS: [&str; 2] = ["--no-input", "--offline"];

/// The verbs ccci calls and the flags it passes to each: the probe checks exactly these.
pub const USED_FLAGS: &[(&[&str], &[&str])] = &[
    (&["app", "new"], &["--server", "--domain", "--secrets", "--chaos", "--no-input", "--offline"]),
    (
        &["app", "deploy"],
        &["--chaos", "--force", "--no-domain-checks", "--no-converge-checks", "--no-input", "--offline"],
    ),
    (&["app", "undeploy"], &["--no-input", "--offline"]),
    (&["app", "volume", "remove"], &["--force", "--no-input", "--offline"]),
    (&["app", "secret", "remove"], &["--all", "--no-input", "--offline"]),
];

/// One abra installation, working in one run's `ABRA_DIR`.
#[derive(Debug, Clone)]
pub struct Abra {
    pub program: PathBuf,
    pub abra_dir: PathBuf,
    pub server: String,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Abra {
    /// `abra app new <recipe> [version] --server S --domain D --secrets [--chaos] --no-input --offline`.
    /// `--secrets` has abra generate every secret the recipe declares, so no value passes through ccci.
    pub fn app_new_args(
        &self,
        recipe: &RecipeName,
        version: Option<&str>,
        domain: &Domain,
        chaos: bool,
    ) -> Vec<String> {
        let mut a = strings(&["app", "new", recipe.as_str()]);
        a.extend(version.map(String::from));
        a.extend(strings(&["--server", &self.server, "--domain", domain.as_str(), "--secrets"]));
        if chaos {
            a.push("--chaos".into());
        }
        a.extend(strings(&ALWAYS));
        a
    }

    /// `abra app deploy <domain> [version] [--chaos] [--force] --no-domain-checks --no-converge-checks --no-input --offline`.
    /// ccci waits for convergence itself (fail-fast on rejected tasks, task errors quoted), and CI
    /// domains do not resolve to the runner, hence the two `--no-*-checks`.
    pub fn app_deploy_args(&self, domain: &Domain, version: Option<&str>, chaos: bool, force: bool) -> Vec<String> {
        let mut a = strings(&["app", "deploy", domain.as_str()]);
        a.extend(version.map(String::from));
        if chaos {
            a.push("--chaos".into());
        }
        if force {
            a.push("--force".into());
        }
        a.extend(strings(&["--no-domain-checks", "--no-converge-checks"]));
        a.extend(strings(&ALWAYS));
        a
    }

    pub fn app_undeploy_args(&self, domain: &Domain) -> Vec<String> {
        let mut a = strings(&["app", "undeploy", domain.as_str()]);
        a.extend(strings(&ALWAYS));
        a
    }

    pub fn volume_remove_args(&self, domain: &Domain) -> Vec<String> {
        let mut a = strings(&["app", "volume", "remove", domain.as_str(), "--force"]);
        a.extend(strings(&ALWAYS));
        a
    }

    pub fn secret_remove_args(&self, domain: &Domain) -> Vec<String> {
        let mut a = strings(&["app", "secret", "remove", domain.as_str(), "--all"]);
        a.extend(strings(&ALWAYS));
        a
    }

    /// The environment of every abra call: cleared, then only what abra needs. Host secrets in
    /// the caller's environment never reach abra (or the recipe's `abra.sh`, which abra sources).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("ABRA_DIR".to_string(), self.abra_dir.display().to_string())];
        env.extend(crate::docker::passthrough_env());
        env
    }

    /// Where this run's recipe checkout lives: abra reads `$ABRA_DIR/recipes/<recipe>`.
    pub fn recipe_dir(&self, recipe: &RecipeName) -> PathBuf {
        self.abra_dir.join("recipes").join(recipe.as_str())
    }

    /// The app env file `abra app new` writes.
    pub fn env_file(&self, domain: &Domain) -> PathBuf {
        self.abra_dir.join("servers").join(&self.server).join(format!("{domain}.env"))
    }

    /// Runs abra with `args`. A non-zero exit, or a `FATA` line despite exit 0, is an error of `kind`.
    pub fn run(&self, sh: &Shell, args: &[String], kind: Kind) -> Result<Output> {
        let what = format!("abra {}", args.join(" "));
        let mut c = sh.cmd(&self.program).args(args).env_clear();
        for (k, v) in self.env() {
            c = c.env(k, v);
        }
        let out = capture(c, &what, kind).map_err(|e| missing_binary_hint(e, &self.program))?;
        if let Some(fata) = out.stdout.lines().chain(out.stderr.lines()).find(|l| l.trim_start().starts_with("FATA")) {
            return Err(Error::new(kind, format!("{what}: {}", fata.trim())));
        }
        Ok(out)
    }

    /// Checks `abra <verb> --help` lists every flag ccci passes to that verb.
    pub fn probe(&self, sh: &Shell) -> Result<()> {
        for (verb, flags) in USED_FLAGS {
            let mut args = strings(verb);
            args.push("--help".into());
            let out = self.run(sh, &args, Kind::Environment)?;
            let help = format!("{}\n{}", out.stdout, out.stderr);
            for flag in *flags {
                if !lists_flag(&help, flag) {
                    return Err(Error::env(format!(
                        "abra drifted from the contract ccci was built for: `abra {} --help` does not list {flag}",
                        verb.join(" ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// `abra --version`, first line, for provenance; `None` if it will not say.
    pub fn version(&self, sh: &Shell) -> Option<String> {
        let out = self.run(sh, &["--version".to_string()], Kind::Environment).ok()?;
        out.stdout.lines().chain(out.stderr.lines()).map(str::trim).find(|l| !l.is_empty()).map(String::from)
    }
}

fn missing_binary_hint(e: Error, program: &Path) -> Error {
    if e.message().contains("No such file") || e.message().contains("not found") && !e.message().contains("exited") {
        Error::env(format!("{e} (is abra installed? set CCCI_ABRA to its path; looked for {})", program.display()))
    } else {
        e
    }
}

/// Whether `help` lists `flag` as a whole word (so `--force` is not found inside `--forced`).
fn lists_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let after = help[i + flag.len()..].chars().next();
        let before = help[..i].chars().next_back();
        !matches!(after, Some(c) if c.is_ascii_alphanumeric() || c == '-') && !matches!(before, Some('-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_matching_is_whole_word() {
        assert!(lists_flag("  -f, --force   force it", "--force"));
        assert!(lists_flag("--chaos, -C", "--chaos"));
        assert!(!lists_flag("  --forced", "--force"));
        assert!(!lists_flag("  --force-all", "--force"));
        assert!(!lists_flag("  ---force", "--force"));
        assert!(lists_flag("--offline=false", "--offline"));
    }
}
