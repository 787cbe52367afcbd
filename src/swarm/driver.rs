//! How a run's app is created, deployed and removed: with the real `abra`, or with plain
//! `docker stack deploy` for swarm compose apps that are not Co-op Cloud recipes (and the demo).

use std::path::{Path, PathBuf};

use xshell::Shell;

use crate::error::{Context, Error, Kind, Result};
use crate::progress::Progress;
use crate::recipe::compose::Compose;
use crate::recipe::env_file::EnvFile;
use crate::recipe::load::{env_sample, guard_tool_reads, interpolation_env, new_app_env};
use crate::recipe::secrets::AppSecret;
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
        DriverKind::Stack.recipe_dir(&self.workspace, &self.recipe)
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
        let files = crate::recipe::env_file::compose_files(&app_env);
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
            docker::remove(sh, crate::run::naming::ObjectKind::Service, &s.name)?;
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
        guard_tool_reads(&dir, &crate::recipe::env_file::compose_files(&env))
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

    #[test]
    fn the_recipe_dir_derivation_is_the_drivers_own() {
        let ws = Path::new("/var/lib/ccci/work/hell-3fa9c2");
        let hello = crate::run::naming::RecipeName::parse("hello").unwrap();
        for kind in [DriverKind::Stack, DriverKind::Abra] {
            assert_eq!(for_run(kind, ws, &hello).unwrap().recipe_dir(), kind.recipe_dir(ws, &hello));
        }
    }
}
