//! How a run's app is created, deployed and removed: with the real `abra`, or with plain
//! `docker stack deploy` for swarm compose apps that are not Co-op Cloud recipes (and the demo).

use std::path::{Path, PathBuf};

use xshell::Shell;

use crate::error::{Context, Error, Kind, Result};
use crate::progress::Progress;
use crate::recipe::secrets::AppSecret;
use crate::recipe::{Compose, EnvFile, checkout};
use crate::run::state::{BaseRelease, DriverKind, RunState};
use crate::swarm::abra::Abra;
use crate::swarm::docker::{self, RUN_LABEL, STACK_LABEL};

pub trait Driver {
    fn kind(&self) -> DriverKind;
    /// Where this run's recipe checkout lives.
    fn recipe_dir(&self) -> PathBuf;
    /// Checks the tool the driver drives, before anything is created; returns its version.
    fn preflight(&self, sh: &Shell) -> Result<Option<String>>;
    /// Creates the app (its env file, its generated secrets); returns the env file. `base` is
    /// the release that will be deployed first, if any.
    fn create_app(
        &self,
        sh: &Shell,
        state: &RunState,
        compose: &Compose,
        base: Option<&BaseRelease>,
        progress: &Progress,
    ) -> Result<PathBuf>;
    /// The run's one deploy: of `base` as a release, or of the tree as it is checked out.
    fn deploy(&self, sh: &Shell, state: &RunState, base: Option<&BaseRelease>, progress: &Progress) -> Result<()>;
    /// Creates one of the app's own secrets that the head needs and the swarm lacks, the
    /// driver's way: stack, ccci generates a value honouring the hints; abra, `abra app secret
    /// generate <domain> <key> <version>`.
    fn generate_secret(&self, sh: &Shell, state: &RunState, secret: &AppSecret, progress: &Progress) -> Result<()>;
    /// Redeploys the checked-out tree in place onto the same stack (the upgrade to the head).
    fn redeploy(&self, sh: &Shell, state: &RunState, progress: &Progress) -> Result<()>;
    /// Asks the stack to go away; teardown waits and sweeps afterwards.
    fn undeploy(&self, sh: &Shell, state: &RunState, progress: &Progress) -> Result<()>;
    /// Once no container of the stack is left: volumes and secrets, the driver's way.
    fn remove_app_data(&self, sh: &Shell, state: &RunState, progress: &Progress) -> Result<()>;
}

/// Where a run's recipe checkout lives in its workspace: `<workspace>/recipe` (stack), or abra's
/// `<workspace>/abra/recipes/<recipe>` (the run's own `ABRA_DIR`).
pub fn recipe_dir(kind: DriverKind, workspace: &Path, recipe: &crate::run::naming::RecipeName) -> PathBuf {
    match kind {
        DriverKind::Stack => workspace.join("recipe"),
        DriverKind::Abra => workspace.join("abra").join("recipes").join(recipe.as_str()),
    }
}

pub fn for_run(
    kind: DriverKind,
    state_workspace: &Path,
    recipe: &crate::run::naming::RecipeName,
) -> Result<Box<dyn Driver>> {
    Ok(match kind {
        DriverKind::Stack => Box::new(StackDriver { workspace: state_workspace.to_path_buf(), recipe: recipe.clone() }),
        DriverKind::Abra => Box::new(AbraDriver {
            abra: Abra {
                program: crate::config::abra_program(),
                abra_dir: state_workspace.join("abra"),
                server: crate::config::abra_server()?,
            },
            recipe: recipe.clone(),
        }),
    })
}

/// The variables a recipe's compose files are interpolated with: the app env, the top-level
/// `export X=Y` lines of `abra.sh` (where recipes version their configs), and `STACK_NAME` and
/// `DOMAIN` as abra provides them.
///
/// Errors: `OpFailed` (the recipe's fault) when a variable is one of [`TOOL_ENV_NAMES`] or starts
/// with one of [`TOOL_ENV_PREFIXES`]: docker runs with these variables in its environment, and
/// those names would change which programs, libraries, plugins and configuration it loads.
pub fn interpolation_env(recipe_dir: &Path, app_env: &EnvFile, state: &RunState) -> Result<Vec<(String, String)>> {
    let vars = interpolation_vars(recipe_dir, app_env, state)?;
    if let Some((k, _)) = vars.iter().find(|(k, _)| is_tool_env(k)) {
        return Err(Error::failed(format!(
            "the recipe sets the variable {k} (in .env.sample, the app env or abra.sh), which would change how docker runs on the host: a recipe's variables may not be named {} or start with {}",
            TOOL_ENV_NAMES.join(", "),
            TOOL_ENV_PREFIXES.join(", ")
        )));
    }
    Ok(vars)
}

/// Names a recipe's variable may not have: docker's compose loader and `docker stack deploy` run
/// with the recipe's variables in their process environment (it is how Docker interpolates), and
/// these decide which programs run (`PATH`, found again through it by the process that starts
/// docker), which libraries load (`LD_PRELOAD`, `GCONV_PATH`), and where docker finds its
/// configuration and plugins (`HOME`, `DOCKER_CONFIG`) or its engine (`DOCKER_HOST`).
pub const TOOL_ENV_NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "IFS",
    "ENV",
    "BASH_ENV",
    "SHELL",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "XDG_RUNTIME_DIR",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GODEBUG",
];

/// Prefixes of [`TOOL_ENV_NAMES`]: the dynamic loader's `LD_*`, the docker client's `DOCKER_*`.
pub const TOOL_ENV_PREFIXES: &[&str] = &["LD_", "DOCKER_"];

fn is_tool_env(name: &str) -> bool {
    TOOL_ENV_NAMES.contains(&name) || TOOL_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn interpolation_vars(recipe_dir: &Path, app_env: &EnvFile, state: &RunState) -> Result<Vec<(String, String)>> {
    let mut vars: Vec<(String, String)> = app_env.vars().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if let Some(bytes) = checkout::read_inside(recipe_dir, "abra.sh")? {
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::failed(format!("abra.sh: not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()))
        })?;
        let exports: String =
            text.lines().filter(|l| l.starts_with("export ") && l.contains('=')).map(|l| format!("{l}\n")).collect();
        let parsed = EnvFile::parse(&exports, "abra.sh").map_err(Error::recipe_fault)?;
        vars.extend(parsed.vars().map(|(k, v)| (k.to_string(), v.to_string())));
    }
    vars.retain(|(k, _)| k != "STACK_NAME" && k != "DOMAIN");
    vars.push(("STACK_NAME".into(), state.stack.to_string()));
    vars.push(("DOMAIN".into(), state.domain.to_string()));
    Ok(vars)
}

/// The recipe's `.env.sample`, or an empty env for a plain compose app without one. Read through
/// [`checkout::open_inside`]: a sample that leaves the checkout is refused.
pub fn env_sample(recipe_dir: &Path) -> Result<EnvFile> {
    match checkout::read_inside(recipe_dir, ".env.sample")? {
        // The PR's author wrote it: bad content is the recipe's failure, not bad input.
        Some(bytes) => EnvFile::from_bytes(bytes, ".env.sample").map_err(Error::recipe_fault),
        None => EnvFile::parse("", ".env.sample"),
    }
}

/// The app env a new app starts with: the recipe's `.env.sample` with `TYPE` set to the recipe's
/// name and `DOMAIN` to the run's, as `abra app new` writes it and the stack driver does. The
/// host-access boundary judges the compose with this env, the one it is deployed with (a
/// variable the sample sets otherwise, such as `TYPE`, must not change what is judged).
pub fn new_app_env(mut sample: EnvFile, state: &RunState) -> EnvFile {
    sample.set("TYPE", state.recipe.as_str());
    sample.set("DOMAIN", state.domain.as_str());
    sample
}

/// Refuses, before a tool of its own (docker's compose loader, abra) reads them, the recipe
/// files it will read when any of them leaves the checkout: `.env.sample`, `abra.sh`, the
/// compose files `files`, and the release notes under `release/`.
pub fn guard_tool_reads(recipe_dir: &Path, files: &[String]) -> Result<()> {
    for rel in [".env.sample", "abra.sh"].into_iter().chain(files.iter().map(String::as_str)) {
        checkout::open_inside(recipe_dir, rel)?;
    }
    checkout::list_inside(recipe_dir, "release")?;
    Ok(())
}

pub fn lookup(env: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
    move |k| env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

/// The error for an app secret the `.env.sample` marks `generate=false`: its value is the
/// operator's (an API key, a certificate), which a CI run has no way to know.
pub fn operator_secret(secret: &AppSecret) -> Error {
    Error::env(format!(
        "secret {} is marked generate=false ({}): an operator inserts its value, which ccci cannot provide",
        secret.name, secret.version_var
    ))
}

pub struct StackDriver {
    workspace: PathBuf,
    recipe: crate::run::naming::RecipeName,
}

impl StackDriver {
    fn env_file(&self) -> PathBuf {
        self.workspace.join("app.env")
    }
}

impl Driver for StackDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Stack
    }

    fn recipe_dir(&self) -> PathBuf {
        recipe_dir(DriverKind::Stack, &self.workspace, &self.recipe)
    }

    fn preflight(&self, _sh: &Shell) -> Result<Option<String>> {
        Ok(None)
    }

    fn create_app(
        &self,
        sh: &Shell,
        state: &RunState,
        compose: &Compose,
        _base: Option<&BaseRelease>,
        progress: &Progress,
    ) -> Result<PathBuf> {
        let env = new_app_env(env_sample(&self.recipe_dir())?, state);
        let path = self.env_file();
        fs_err::write(&path, env.render())?;
        // External secrets named into this stack are the app's own: generate them, as
        // `abra app new --secrets` does. Other external secrets are shared and must pre-exist.
        for secret in crate::recipe::secrets::app_secrets(compose, &state.stack, &env) {
            if !secret.hints.generate {
                return Err(operator_secret(&secret));
            }
            self.generate_secret(sh, state, &secret, progress)?;
        }
        Ok(path)
    }

    fn generate_secret(&self, sh: &Shell, state: &RunState, secret: &AppSecret, progress: &Progress) -> Result<()> {
        for word in &secret.hints.ignored {
            progress.log(format!("warning: {}: hint {word} not understood; ignored", secret.version_var));
        }
        progress.log(format!("generating secret {}", secret.name));
        docker::create_secret(
            sh,
            &secret.name,
            &[(STACK_LABEL, state.stack.as_str()), (RUN_LABEL, state.run_id.as_str())],
            &crate::recipe::secrets::generate(&secret.hints)?,
        )
    }

    fn deploy(&self, sh: &Shell, state: &RunState, _base: Option<&BaseRelease>, progress: &Progress) -> Result<()> {
        // The tree is already checked out at the base release (or the head).
        self.redeploy(sh, state, progress)
    }

    fn redeploy(&self, sh: &Shell, state: &RunState, progress: &Progress) -> Result<()> {
        let dir = self.recipe_dir();
        // Written from the recipe's sample (and edited by install-steps hooks): its content is theirs.
        let app_env = EnvFile::read(&self.env_file()).map_err(Error::recipe_fault)?;
        let files = crate::recipe::compose_files(&app_env);
        guard_tool_reads(&dir, &files)?;
        let env = interpolation_env(&dir, &app_env, state)?;
        progress.log(format!("docker stack deploy {} ({})", state.stack, files.join(", ")));
        let warnings = docker::stack_deploy(sh, &dir, &files, &state.stack, &env)?;
        for w in warnings.lines().filter(|l| l.contains("Ignoring unsupported options")) {
            progress.log(format!("warning: {w}"));
        }
        Ok(())
    }

    fn undeploy(&self, sh: &Shell, state: &RunState, progress: &Progress) -> Result<()> {
        for s in docker::services(sh, &state.stack)? {
            progress.log(format!("removing service {}", s.name));
            docker::remove(sh, docker::ObjectKind::Service, &s.name)?;
        }
        Ok(())
    }

    fn remove_app_data(&self, _sh: &Shell, _state: &RunState, _progress: &Progress) -> Result<()> {
        // Nothing driver-specific: the generic sweep removes secrets, configs and volumes.
        Ok(())
    }
}

pub struct AbraDriver {
    pub abra: Abra,
    recipe: crate::run::naming::RecipeName,
}

impl AbraDriver {
    /// abra reads the checkout itself: refuse first what would lead it outside. The compose
    /// files are the app env's `COMPOSE_FILE` once the app exists, the sample's before.
    fn guard(&self, state: &RunState) -> Result<()> {
        let dir = self.recipe_dir();
        let app_env = self.abra.env_file(&state.domain);
        let env = if app_env.exists() { EnvFile::read(&app_env)? } else { env_sample(&dir)? };
        guard_tool_reads(&dir, &crate::recipe::compose_files(&env))
    }
}

impl Driver for AbraDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Abra
    }

    fn recipe_dir(&self) -> PathBuf {
        self.abra.recipe_dir(&self.recipe)
    }

    fn preflight(&self, sh: &Shell) -> Result<Option<String>> {
        // The run is not registered yet, so the probe must not touch its workspace: a workspace
        // without a registry entry is an orphan to the janitor. abra gets a throwaway ABRA_DIR.
        let scratch = sh.create_temp_dir()?;
        let probe = Abra { abra_dir: scratch.path().to_path_buf(), ..self.abra.clone() };
        probe.probe(sh)?;
        Ok(probe.version(sh))
    }

    fn create_app(
        &self,
        sh: &Shell,
        state: &RunState,
        compose: &Compose,
        base: Option<&BaseRelease>,
        progress: &Progress,
    ) -> Result<PathBuf> {
        // The local swarm is abra's server `default`: a server is a directory of app env files.
        self.guard(state)?;
        fs_err::create_dir_all(self.abra.abra_dir.join("servers").join(&self.abra.server))?;
        // A release base is created at its version, as an operator would. Otherwise --chaos keeps
        // abra from moving the checkout to a release tag (`docs/abra-contract.md` P4): the run deploys the tree
        // ccci checked out and hashed.
        let args = match base {
            Some(b) if b.annotated => self.abra.app_new_args(&self.recipe, Some(&b.tag), &state.domain, false),
            _ => self.abra.app_new_args(&self.recipe, None, &state.domain, true),
        };
        progress.log(format!("abra {}", args.join(" ")));
        self.abra.run(sh, &args, Kind::OpFailed)?;
        let env_file = self.abra.env_file(&state.domain);
        if !env_file.exists() {
            return Err(Error::env(format!("abra app new did not write {}", env_file.display())));
        }
        // `--secrets` skips what the env marks generate=false: the deploy would then fail on a
        // missing secret and blame the recipe. Say what is missing, as the stack driver does.
        let env = EnvFile::read(&env_file)?;
        if let Some(secret) =
            crate::recipe::secrets::app_secrets(compose, &state.stack, &env).iter().find(|s| !s.hints.generate)
        {
            return Err(operator_secret(secret));
        }
        Ok(env_file)
    }

    fn deploy(&self, sh: &Shell, state: &RunState, base: Option<&BaseRelease>, progress: &Progress) -> Result<()> {
        self.guard(state)?;
        let args = match base {
            // A normal release deploy of the base, on the clean tree abra checks out itself.
            Some(b) if b.annotated => self.abra.app_deploy_args(&state.domain, Some(&b.tag), false, false),
            _ => self.abra.app_deploy_args(&state.domain, None, true, false),
        };
        progress.log(format!("abra {}", args.join(" ")));
        self.abra.run(sh, &args, Kind::OpFailed)?;
        Ok(())
    }

    fn generate_secret(&self, sh: &Shell, state: &RunState, secret: &AppSecret, progress: &Progress) -> Result<()> {
        // abra names a secret `<stack>_<key>_<version>` from SECRET_<KEY>_VERSION; it cannot
        // generate one the recipe names any other way.
        let version = secret.version.as_deref().unwrap_or("");
        if version.is_empty() || secret.name != format!("{}{}_{version}", state.stack.prefix(), secret.key) {
            return Err(Error::failed(format!(
                "secret {} (key {}) is not named {}{}_${{{}}}: abra cannot generate it",
                secret.name,
                secret.key,
                state.stack.prefix(),
                secret.key,
                secret.version_var
            )));
        }
        let args = self.abra.secret_generate_args(&state.domain, &secret.key, version);
        progress.log(format!("abra {}", args.join(" ")));
        self.abra.run(sh, &args, Kind::OpFailed)?;
        Ok(())
    }

    fn redeploy(&self, sh: &Shell, state: &RunState, progress: &Progress) -> Result<()> {
        // In place: --chaos deploys the tree as checked out (the head) and stamps its commit;
        // --force because the app is already deployed.
        self.guard(state)?;
        let args = self.abra.app_deploy_args(&state.domain, None, true, true);
        progress.log(format!("abra {}", args.join(" ")));
        self.abra.run(sh, &args, Kind::OpFailed)?;
        Ok(())
    }

    fn undeploy(&self, sh: &Shell, state: &RunState, progress: &Progress) -> Result<()> {
        if docker::services(sh, &state.stack)?.is_empty() {
            return Ok(());
        }
        let args = self.abra.app_undeploy_args(&state.domain);
        progress.log(format!("abra {}", args.join(" ")));
        self.abra.run(sh, &args, Kind::Environment).map(|_| ())
    }

    fn remove_app_data(&self, sh: &Shell, state: &RunState, progress: &Progress) -> Result<()> {
        if !self.abra.env_file(&state.domain).exists() {
            return Ok(()); // abra no longer knows the app; the generic sweep does the rest
        }
        for args in [self.abra.volume_remove_args(&state.domain), self.abra.secret_remove_args(&state.domain)] {
            progress.log(format!("abra {}", args.join(" ")));
            self.abra.run(sh, &args, Kind::Environment).context("abra")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A recipe checkout and a host file beside it (outside), removed on drop.
    struct Recipe(PathBuf);

    impl Recipe {
        fn new(name: &str) -> Recipe {
            let base = std::env::temp_dir().join(format!("ccci-driver-test-{}-{name}", std::process::id()));
            let _ = fs_err::remove_dir_all(&base);
            fs_err::create_dir_all(base.join("recipe")).unwrap();
            fs_err::create_dir_all(base.join("host")).unwrap();
            fs_err::write(base.join("host/values"), "export HOST_SECRET=from-the-host\nCOMPOSE_FILE=compose.yml\n")
                .unwrap();
            Recipe(base)
        }
        fn dir(&self) -> PathBuf {
            self.0.join("recipe")
        }
        fn host_file(&self) -> PathBuf {
            self.0.join("host/values")
        }
    }

    impl Drop for Recipe {
        fn drop(&mut self) {
            let _ = fs_err::remove_dir_all(&self.0);
        }
    }

    fn assert_refused(e: Error, file: &str) {
        assert_eq!(e.kind(), Kind::OpFailed, "{e}");
        let m = e.to_string();
        assert!(m.contains(file) && m.contains("outside the recipe checkout"), "{m}");
        assert!(!m.contains("from-the-host"), "the target's content is not shown: {m}");
    }

    #[test]
    fn the_recipe_dir_derivation_is_the_drivers_own() {
        let ws = Path::new("/var/lib/ccci/work/hell-3fa9c2");
        let hello = crate::run::naming::RecipeName::parse("hello").unwrap();
        for kind in [DriverKind::Stack, DriverKind::Abra] {
            assert_eq!(for_run(kind, ws, &hello).unwrap().recipe_dir(), recipe_dir(kind, ws, &hello));
        }
    }

    #[test]
    fn an_env_sample_symlinked_outside_the_checkout_is_refused_not_read() {
        let r = Recipe::new("env-sample");
        symlink(r.host_file(), r.dir().join(".env.sample")).unwrap();
        assert_refused(env_sample(&r.dir()).unwrap_err(), ".env.sample");
        fs_err::remove_file(r.dir().join(".env.sample")).unwrap();
        fs_err::write(r.dir().join("sample.real"), "TYPE=hello\n").unwrap();
        symlink("sample.real", r.dir().join(".env.sample")).unwrap();
        assert_eq!(env_sample(&r.dir()).unwrap().get("TYPE"), Some("hello"), "a link inside is followed");
    }

    #[test]
    fn an_abra_sh_symlinked_outside_the_checkout_is_refused_not_read() {
        let r = Recipe::new("abra-sh");
        symlink(r.host_file(), r.dir().join("abra.sh")).unwrap();
        let state = crate::run::state::tests::sample();
        let e = interpolation_env(&r.dir(), &EnvFile::parse("", "x").unwrap(), &state).unwrap_err();
        assert_refused(e, "abra.sh");
    }

    #[test]
    fn a_recipe_variable_that_would_change_how_docker_runs_is_refused() {
        let r = Recipe::new("tool-env");
        let state = crate::run::state::tests::sample();
        for line in [
            "PATH=/tmp/evil:/usr/bin",
            "HOME=.",
            "LD_PRELOAD=./evil.so",
            "LD_LIBRARY_PATH=.",
            "DOCKER_CONFIG=./cfg",
            "DOCKER_HOST=unix:///tmp/other.sock",
            "GCONV_PATH=.",
            "GLIBC_TUNABLES=glibc.malloc.check=3",
        ] {
            let env = EnvFile::parse(&format!("TYPE=hello\n{line}\n"), ".env.sample").unwrap();
            let e = interpolation_env(&r.dir(), &env, &state).unwrap_err();
            assert_eq!(e.kind(), Kind::OpFailed, "{line}: {e}");
            let name = line.split('=').next().unwrap();
            assert!(e.to_string().starts_with(&format!("the recipe sets the variable {name} ")), "{line}: {e}");
            let value = line.split('=').nth(1).unwrap();
            assert!(value.len() < 3 || !e.to_string().contains(value), "the value is not shown: {e}");
        }
        // abra.sh's exports are interpolated too.
        fs_err::write(r.dir().join("abra.sh"), "export LD_PRELOAD=./evil.so\n").unwrap();
        let env = EnvFile::parse("TYPE=hello\n", ".env.sample").unwrap();
        let e = interpolation_env(&r.dir(), &env, &state).unwrap_err();
        assert!(e.to_string().starts_with("the recipe sets the variable LD_PRELOAD "), "{e}");
        // Names that only contain them are the recipe's own.
        fs_err::remove_file(r.dir().join("abra.sh")).unwrap();
        let env = EnvFile::parse("DB_DOCKER_IMAGE=postgres\nAPP_PATH=/x\nHOMEPAGE=y\n", ".env.sample").unwrap();
        assert!(interpolation_env(&r.dir(), &env, &state).is_ok());
    }

    #[test]
    fn files_a_tool_reads_are_refused_when_they_leave_the_checkout() {
        for (name, file) in [
            ("g-sample", ".env.sample"),
            ("g-abra", "abra.sh"),
            ("g-compose", "compose.yml"),
            ("g-override", "compose.extra.yml"),
            ("g-release", "release/1.0.0+1.0"),
        ] {
            let r = Recipe::new(name);
            fs_err::create_dir_all(r.dir().join("release")).unwrap();
            symlink(r.host_file(), r.dir().join(file)).unwrap();
            let files = vec!["compose.yml".to_string(), "compose.extra.yml".to_string()];
            assert_refused(guard_tool_reads(&r.dir(), &files).unwrap_err(), file);
        }
        let r = Recipe::new("g-release-dir");
        symlink(r.0.join("host"), r.dir().join("release")).unwrap();
        assert_refused(guard_tool_reads(&r.dir(), &[]).unwrap_err(), "release");
        let r = Recipe::new("g-clean");
        fs_err::write(r.dir().join("compose.yml"), "services: {}\n").unwrap();
        guard_tool_reads(&r.dir(), &["compose.yml".to_string()]).unwrap();
    }
}
