//! The recipe as a deploy reads it: its `.env.sample`, the top-level exports of its `abra.sh` and
//! its compose files, interpolated with the run's `STACK_NAME` and `DOMAIN` the way abra and
//! `docker stack deploy` do, every file read inside the checkout.

use std::path::Path;

use crate::error::{Error, Result};
use crate::recipe::checkout;
use crate::recipe::compose::Compose;
use crate::recipe::env_file::{EnvFile, compose_files};
use crate::run::naming;
use crate::run::state::RunState;

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

/// The compose files of the checked-out tree, interpolated with the app env as the deploy will.
pub fn load_with_app_env(dir: &Path, app_env: &EnvFile, state: &RunState) -> Result<Compose> {
    let files = compose_files(app_env);
    let env = interpolation_env(dir, app_env, state)?;
    Compose::load(dir, &files, &lookup(&env))
        .map_err(|e| Error::failed(e.message().to_string()).context("reading the head's recipe"))
}

/// Reads the recipe as the deploy will see it: `.env.sample` plus STACK_NAME and DOMAIN.
pub fn read_recipe(recipe_dir: &std::path::Path, state: &RunState) -> Result<Compose> {
    let sample = env_sample(recipe_dir)?;
    let files = compose_files(&sample);
    let env = interpolation_env(recipe_dir, &sample, state)?;
    let lookup = lookup(&env);
    Compose::load(recipe_dir, &files, &lookup).map_err(|e| e.recipe_fault().context("reading the recipe"))
}

/// Refuses, before anything is created on the swarm, names Docker would refuse.
pub fn check_names(compose: &Compose, state: &RunState) -> Result<()> {
    let mut problems = vec![];
    for svc in compose.services.keys() {
        if let Err(e) = naming::check_object_name("service", &format!("{}_{svc}", state.stack)) {
            problems.push(e.to_string());
        }
    }
    for obj in compose.swarm_object_names(state.stack.as_str()) {
        if (obj.kind == "secret" || obj.kind == "config")
            && let Err(e) = naming::check_object_name(obj.kind.as_str(), &obj.name)
        {
            problems.push(e.to_string());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        // An unset variable is the usual cause of a malformed name: say which.
        let unset = if compose.unset.is_empty() {
            String::new()
        } else {
            format!(" (variables with no value: {})", compose.unset.join(", "))
        };
        Err(Error::failed(format!("refusing to deploy: {}{unset}", problems.join("; "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

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
