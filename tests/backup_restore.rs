//! The backup and restore tiers end to end on this machine's real swarm, with the host's restic:
//! the example recipe backs up a dump and imports it on restore with evidence, and each negative
//! control makes its tier fail with a message naming what was missing. Also the data canary the
//! install tier plants for the upgrade to keep. Needs Docker in swarm
//! mode, the example image and restic (`scripts/setup`); without them these tests fail.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{Sandbox, assertion, ccci, left_on_swarm, make_repo, op, read_state, repo_root, write_exec};
use serde_json::Value;

struct Run {
    sb: Sandbox,
    state_file: PathBuf,
    /// Deploy the base release first (for the upgrade tier), or the head only.
    upgrade: bool,
    driver: &'static str,
}

impl Run {
    fn new(name: &str, variant: &str) -> Run {
        let sb = Sandbox::new(name);
        make_repo(&sb.root.join("hello"), Some(variant));
        let state_file = sb.root.join("run.json");
        Run { sb, state_file, upgrade: false, driver: "stack" }
    }

    /// The abra driver, through the abra test double with a stand-in backup-bot-two: a restic
    /// repository and its password file in the sandbox, which ccci reads its evidence from.
    fn with_abra(self) -> Run {
        self.with_abra_dropping("")
    }

    /// [`Run::with_abra`] whose double has drifted: `flag` is gone from its `--help` and its
    /// accepted flags.
    fn with_abra_dropping(mut self, flag: &str) -> Run {
        self.driver = "abra";
        let repo = self.sb.dir("backupbot-repo");
        std::fs::write(self.sb.root.join("backupbot-password"), "a backupbot password\n").unwrap();
        write_exec(
            &self.sb.root.join("abra"),
            &format!(
                "#!/bin/sh\nexec env ABRA_DOUBLE_DROP_FLAG='{flag}' ABRA_DOUBLE_BACKUP_REPOSITORY='{}' ABRA_DOUBLE_BACKUP_PASSWORD_FILE='{}' '{}' \"$@\"\n",
                repo.display(),
                self.sb.root.join("backupbot-password").display(),
                repo_root().join("tests/support/abra").display()
            ),
        );
        self
    }

    fn with_upgrade(mut self) -> Run {
        self.upgrade = true;
        self
    }

    fn cmd(&self, name: &str) -> Command {
        let mut c = ccci(&self.sb.state_dir(), name);
        c.env("CCCI_OVERLAYS_DIR", repo_root().join("overlays"))
            .env("CCCI_SERVING_TIMEOUT", "8s")
            .env("CCCI_SETTLE_WINDOW", "2s")
            .env("CCCI_DEPLOY_TIMEOUT", "90s")
            .env("CCCI_LEASE_TTL", "5m");
        if self.driver == "abra" {
            c.env("CCCI_ABRA", self.sb.root.join("abra"))
                .env("CCCI_BACKUPBOT_REPOSITORY", self.sb.root.join("backupbot-repo"))
                .env("CCCI_BACKUPBOT_PASSWORD_FILE", self.sb.root.join("backupbot-password"));
        }
        c
    }

    fn deploy(&self) -> Output {
        let mut c = self.cmd("ccci-deploy");
        if !self.upgrade {
            c.arg("--no-upgrade");
        }
        c.args(["--driver", self.driver, "--recipe-name", "hello", "--ref", "main", "--recipe"])
            .arg(self.sb.root.join("hello"))
            .arg("--state")
            .arg(&self.state_file)
            .output()
            .unwrap()
    }

    fn step(&self, name: &str, args: &[&str]) -> Output {
        let out = self.cmd(name).args(args).arg("--state").arg(&self.state_file).output().unwrap();
        eprintln!("{name} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    fn state(&self) -> Value {
        read_state(&self.state_file)
    }

    /// Deploy, assert install, then `stages` (binary, args) in order; returns their exit codes.
    fn pipe(&self, stages: &[(&str, &[&str])]) -> Vec<i32> {
        let d = self.deploy();
        assert_eq!(d.status.code(), Some(0), "deploy: {}", String::from_utf8_lossy(&d.stderr));
        assert_eq!(self.step("ccci-assert", &["install"]).status.code(), Some(0), "install");
        stages.iter().map(|(bin, args)| self.step(bin, args).status.code().unwrap()).collect()
    }

    /// Tears the run down and checks nothing of it is left (its restic repository included).
    fn teardown(&self) -> Value {
        let t = self.step("ccci-teardown", &[]);
        assert_eq!(t.status.code(), Some(0), "teardown: {}", String::from_utf8_lossy(&t.stderr));
        let s = self.state();
        let stack = s["stack"].as_str().unwrap();
        let left = left_on_swarm(stack);
        assert!(left.is_empty(), "left on the swarm: {left:?}");
        assert!(!self.sb.state_dir().join("work").join(s["run_id"].as_str().unwrap()).exists(), "workspace left");
        s
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.state_file.exists() {
            let _ = self.cmd("ccci-teardown").arg("--state").arg(&self.state_file).output();
        }
    }
}

const UPGRADE: (&str, &[&str]) = ("ccci-upgrade", &[]);
const ASSERT_UPGRADE: (&str, &[&str]) = ("ccci-assert", &["upgrade"]);
const BACKUP: (&str, &[&str]) = ("ccci-backup", &[]);
const ASSERT_BACKUP: (&str, &[&str]) = ("ccci-assert", &["backup"]);
const RESTORE: (&str, &[&str]) = ("ccci-restore", &[]);
const ASSERT_RESTORE: (&str, &[&str]) = ("ccci-assert", &["restore"]);

fn report(state_file: &std::path::Path, format: &str) -> String {
    let out = Command::new(common::bin("ccci-report"))
        .args(["--format", format, "--state"])
        .arg(state_file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The demo's pipe: the base release, the upgrade, then backup and restore of the head.
#[test]
fn the_example_backs_up_a_dump_and_restores_it_with_evidence_in_every_report() {
    let run = Run::new("bk-ok", "ok").with_upgrade();
    let codes = run.pipe(&[UPGRADE, ASSERT_UPGRADE, BACKUP, ASSERT_BACKUP, RESTORE, ASSERT_RESTORE]);
    assert_eq!(codes, [0, 0, 0, 0, 0, 0], "{:#}", run.state());
    let s = run.state();
    let kept = assertion(op(&s, "assert upgrade"), "volume data kept by the upgrade");
    assert_eq!(kept["result"], "pass", "{kept}");
    assert!(kept["detail"].as_str().unwrap().contains("intact in data"), "{kept}");
    assert_eq!(s["upgrade"]["canaries"][0]["volume"], "data");
    let b = op(&s, "backup");
    assert_eq!(b["result"], "pass", "{b:#}");
    let ev = &b["backup"];
    let snapshot = ev["snapshot"].as_str().unwrap();
    assert_eq!(snapshot.len(), 64, "the full snapshot id: {ev:#}");
    assert!(ev["repository"].as_str().unwrap().ends_with("/backup/restic"));
    let vol = &ev["volumes"][0];
    assert_eq!(vol["volume"], "data");
    assert!(vol["files"].as_u64().unwrap() >= 2, "the dump and the canary: {vol:#}");
    assert!(vol["paths"][0].as_str().unwrap().ends_with("/_data/dump"), "limited by the path label: {vol:#}");
    let canary = &ev["canaries"][0];
    assert!(canary["path"].as_str().unwrap().contains(&format!("ccci-canary-{}-data", s["run_id"].as_str().unwrap())));
    assert_eq!(canary["checked"], "pass");
    assert_eq!(ev["hooks"][0]["phase"], "backup-pre");
    assert_eq!(ev["hooks"][0]["exit"], 0);
    for name in [
        "one new snapshot tagged with this run",
        "every included volume contributed files",
        "canaries in the snapshot",
        "labelled paths non-empty",
        "overlays/hello/backup/plant/10-row",
    ] {
        assert_eq!(assertion(b, name)["result"], "pass", "{name}");
    }
    assert_eq!(assertion(op(&s, "assert backup"), "backup evidence")["result"], "pass");
    assert_eq!(assertion(op(&s, "assert backup"), "overlays/hello/backup/10-row-in-dump")["result"], "pass");
    let r = op(&s, "restore");
    assert_eq!(r["result"], "pass", "{r:#}");
    assert_eq!(r["backup"]["snapshot"], snapshot, "restored by the backup's id");
    assert_eq!(r["backup"]["hooks"][0]["phase"], "restore-post");
    let survived = assertion(r, "files written after the backup");
    assert!(survived["detail"].as_str().unwrap().contains("1 survived"), "{survived}");
    let ar = op(&s, "assert restore");
    assert_eq!(assertion(ar, "canaries restored")["result"], "pass");
    assert_eq!(assertion(ar, "overlays/hello/restore/10-row-is-back")["result"], "pass", "the dump was imported");

    let short = &snapshot[..8];
    for format in ["text", "markdown", "junit"] {
        let text = report(&run.state_file, format);
        assert!(text.contains(short), "{format} report shows the snapshot id:\n{text}");
        assert!(text.contains("canaries restored"), "{format}");
    }
    let junit = report(&run.state_file, "junit");
    for case in [
        "one new snapshot tagged with this run",
        "every included volume contributed files",
        "canaries in the snapshot",
        "labelled paths non-empty",
    ] {
        assert!(junit.contains(&format!("name=\"{case}\"")), "a JUnit testcase for {case}:\n{junit}");
    }
    run.teardown();
}

#[test]
fn a_backup_pre_hook_that_exits_non_zero_fails_the_backup_quoting_its_output() {
    let run = Run::new("bk-hook", "backup-hook-fails");
    let codes = run.pipe(&[BACKUP, ASSERT_BACKUP, RESTORE]);
    assert_eq!(codes, [1, 0, 0]);
    let s = run.state();
    let b = op(&s, "backup");
    assert_eq!(b["result"], "fail");
    let detail = b["detail"].as_str().unwrap();
    assert!(detail.contains("backup pre-hook of app") && detail.contains("exited 1"), "{detail}");
    assert!(detail.contains("pg_dump: connection refused"), "the hook's output is quoted: {detail}");
    assert_eq!(b["backup"]["hooks"][0]["exit"], 1);
    assert_eq!(op(&s, "assert backup")["result"], "skip");
    assert_eq!(op(&s, "restore")["result"], "skip");
    run.teardown();
}

#[test]
fn a_path_label_naming_a_missing_path_fails_the_backup_naming_it() {
    // restic 0.14 saves the snapshot and exits 0 when one of its paths does not exist.
    let run = Run::new("bk-missing", "backup-missing-path");
    let codes = run.pipe(&[BACKUP]);
    assert_eq!(codes, [1]);
    let s = run.state();
    let b = op(&s, "backup");
    assert_eq!(b["result"], "fail");
    let a = assertion(b, "labelled paths non-empty");
    assert_eq!(a["result"], "fail");
    assert!(a["detail"].as_str().unwrap().contains("data:missing"), "{a}");
    assert!(a["detail"].as_str().unwrap().contains("does not exist"), "{a}");
    assert_eq!(assertion(b, "one new snapshot tagged with this run")["result"], "pass", "restic did save one");
    run.teardown();
}

#[test]
fn a_restore_post_hook_that_wipes_the_data_fails_the_restore() {
    let run = Run::new("bk-wipe", "restore-wipes");
    let codes = run.pipe(&[BACKUP, ASSERT_BACKUP, RESTORE, ASSERT_RESTORE]);
    assert_eq!(codes, [0, 0, 1, 0]);
    let s = run.state();
    let r = op(&s, "restore");
    assert_eq!(r["result"], "fail");
    let a = assertion(r, "canaries restored");
    assert_eq!(a["result"], "fail");
    assert!(
        a["detail"].as_str().unwrap().contains("ccci-canary-") && a["detail"].as_str().unwrap().contains("is gone"),
        "{a}"
    );
    assert_eq!(op(&s, "assert restore")["result"], "skip");
    run.teardown();
}

#[test]
fn a_volume_excluded_by_label_fails_the_backup_saying_it_would_save_nothing() {
    let run = Run::new("bk-excluded", "backup-excluded");
    let codes = run.pipe(&[BACKUP, ASSERT_BACKUP]);
    assert_eq!(codes, [1, 0]);
    let s = run.state();
    let b = op(&s, "backup");
    assert_eq!(b["result"], "fail");
    let detail = b["detail"].as_str().unwrap();
    assert!(
        detail.contains("would save nothing") && detail.contains("backupbot.backup.volumes.data=false"),
        "{detail}"
    );
    run.teardown();
}

#[test]
fn a_recipe_without_backup_labels_skips_both_tiers_with_that_reason() {
    let run = Run::new("bk-none", "no-backup");
    let codes = run.pipe(&[BACKUP, ASSERT_BACKUP, RESTORE, ASSERT_RESTORE]);
    assert_eq!(codes, [0, 0, 0, 0]);
    let s = run.state();
    for name in ["backup", "assert backup", "restore", "assert restore"] {
        let o = op(&s, name);
        assert_eq!(o["result"], "skip", "{name}: {o:#}");
        assert!(o["detail"].as_str().unwrap().contains("declares no backup"), "{name}: {o:#}");
    }
    assert!(op(&s, "backup").get("backup").is_none(), "no evidence for a skipped backup");
    assert!(
        !run.sb.state_dir().join("work").join(s["run_id"].as_str().unwrap()).join("backup").exists(),
        "no repository"
    );
    run.teardown();
}

#[test]
fn an_upgrade_whose_head_empties_the_volume_fails_the_upgrade_tier() {
    let run = Run::new("bk-upwipe", "upgrade-wipes-data").with_upgrade();
    let codes = run.pipe(&[UPGRADE, ASSERT_UPGRADE]);
    assert_eq!(codes, [0, 1], "the app serves; only the canary tells: {:#}", run.state());
    let s = run.state();
    let au = op(&s, "assert upgrade");
    assert_eq!(au["result"], "fail");
    let kept = assertion(au, "volume data kept by the upgrade");
    assert_eq!(kept["result"], "fail");
    let detail = kept["detail"].as_str().unwrap();
    assert!(detail.contains("the upgrade lost data: volume data") && detail.contains("is gone"), "{detail}");
    assert_eq!(assertion(au, "serving app:8080")["result"], "pass", "whatever the app serves");
    run.teardown();
}

#[test]
fn an_upgrade_that_mounts_a_new_volume_instead_fails_the_upgrade_tier() {
    let run = Run::new("bk-uprename", "volume-renamed").with_upgrade();
    let codes = run.pipe(&[UPGRADE, ASSERT_UPGRADE]);
    assert_eq!(codes, [0, 1], "{:#}", run.state());
    let s = run.state();
    let kept = assertion(op(&s, "assert upgrade"), "volume data kept by the upgrade");
    assert_eq!(kept["result"], "fail");
    assert!(kept["detail"].as_str().unwrap().contains("volume data is no longer mounted by any service"), "{kept}");
    run.teardown();
}

#[test]
fn a_service_without_a_restore_hook_is_stopped_for_the_restore_and_the_overlay_sees_nothing_imported() {
    let run = Run::new("bk-nohook", "no-restore-hook");
    let codes = run.pipe(&[BACKUP, ASSERT_BACKUP, RESTORE, ASSERT_RESTORE]);
    assert_eq!(codes, [0, 0, 0, 1], "{:#}", run.state());
    let s = run.state();
    let r = op(&s, "restore");
    assert_eq!(r["result"], "pass", "the files came back: {r:#}");
    assert!(r["detail"].as_str().unwrap().contains("stopped during it: app"), "{r:#}");
    assert_eq!(assertion(r, "converged after the restore")["result"], "pass");
    let ar = op(&s, "assert restore");
    assert_eq!(assertion(ar, "canaries restored")["result"], "pass");
    let rows = assertion(ar, "overlays/hello/restore/10-row-is-back");
    assert_eq!(rows["result"], "fail", "without an import the app's later rows stay: {rows}");
    assert_eq!(s["deployed"]["services"]["app"]["running_replicas"], 1, "scaled back");
    run.teardown();
}

/// The abra driver: `abra app backup create` and `abra app restore --snapshot <id>` against a
/// stand-in backup-bot-two (the abra test double), the evidence read with the host's restic
/// from its repository.
#[test]
fn the_abra_driver_backs_up_and_restores_through_backupbot_with_evidence_read_independently() {
    let run = Run::new("bk-abra", "ok").with_abra();
    let codes = run.pipe(&[BACKUP, ASSERT_BACKUP, RESTORE, ASSERT_RESTORE]);
    assert_eq!(codes, [0, 0, 0, 0], "{:#}", run.state());
    let s = run.state();
    let b = op(&s, "backup");
    assert_eq!(b["backup"]["engine"], "abra");
    assert!(b["backup"]["repository"].as_str().unwrap().ends_with("/backupbot-repo"), "{b:#}");
    let created = assertion(b, "abra app backup create");
    assert_eq!(created["result"], "pass");
    assert!(created["output"].as_str().unwrap().contains("backup finished"), "{created}");
    for name in
        ["one new snapshot tagged with this run", "every included volume contributed files", "labelled paths non-empty"]
    {
        assert_eq!(assertion(b, name)["result"], "pass", "{name}: {b:#}");
    }
    assert_eq!(assertion(op(&s, "assert backup"), "backup evidence")["result"], "pass");
    let r = op(&s, "restore");
    assert_eq!(r["backup"]["snapshot"], b["backup"]["snapshot"]);
    assert_eq!(assertion(r, "abra app restore")["result"], "pass");
    let calls = std::fs::read_to_string(
        run.sb.state_dir().join("work").join(s["run_id"].as_str().unwrap()).join("abra/double-calls.log"),
    );
    // The workspace is still there until teardown: the calls abra got, exactly.
    let calls = calls.unwrap();
    let snapshot = b["backup"]["snapshot"].as_str().unwrap();
    let domain = s["domain"].as_str().unwrap();
    assert!(calls.contains(&format!("app\tbackup\tcreate\t{domain}\t--no-input\t--offline\n")), "{calls}");
    assert!(
        calls.contains(&format!("app\trestore\t{domain}\t--snapshot\t{snapshot}\t--no-input\t--offline\n")),
        "{calls}"
    );
    assert_eq!(assertion(op(&s, "assert restore"), "overlays/hello/restore/10-row-is-back")["result"], "pass");
    run.teardown();
}

#[test]
fn the_abra_driver_fails_the_backup_when_backupbot_reports_a_failed_hook() {
    let run = Run::new("bk-abra-hook", "backup-hook-fails").with_abra();
    let codes = run.pipe(&[BACKUP]);
    assert_eq!(codes, [1]);
    let s = run.state();
    let b = op(&s, "backup");
    assert_eq!(b["result"], "fail");
    let detail = b["detail"].as_str().unwrap();
    assert!(detail.contains("pg_dump: connection refused"), "the hook's output is quoted: {detail}");
    assert_eq!(assertion(b, "abra app backup create")["result"], "fail");
    run.teardown();
}

/// backup-bot-two skips a missing path with an error line and exits 0 with a snapshot.
#[test]
fn the_abra_driver_fails_the_backup_on_an_error_line_despite_exit_0() {
    let run = Run::new("bk-abra-missing", "backup-missing-path").with_abra();
    let codes = run.pipe(&[BACKUP]);
    assert_eq!(codes, [1]);
    let s = run.state();
    let b = op(&s, "backup");
    let created = assertion(b, "abra app backup create");
    assert_eq!(created["result"], "fail");
    let detail = created["detail"].as_str().unwrap();
    assert!(detail.contains("logged an error") && detail.contains("_data/missing does not exist"), "{detail}");
    assert!(created["output"].as_str().unwrap().contains("backup finished"), "abra itself said it finished");
    run.teardown();
}

/// The `--help` drift probe of the backup verbs: an abra whose `app restore` lost `--snapshot`
/// stops ccci-backup before it plants or backs up anything (exit 3, naming flag and verb).
#[test]
fn a_drifted_abra_restore_stops_the_backup_before_anything_is_planted() {
    let run = Run::new("bk-abra-drift", "ok").with_abra_dropping("--snapshot");
    let codes = run.pipe(&[BACKUP]);
    assert_eq!(codes, [3]);
    let s = run.state();
    let b = op(&s, "backup");
    assert_eq!(b["result"], "error");
    let detail = b["detail"].as_str().unwrap();
    assert!(
        detail.contains("--snapshot") && detail.contains("abra app restore --help") && detail.contains("drifted"),
        "{detail}"
    );
    assert!(std::fs::read_dir(run.sb.root.join("backupbot-repo")).unwrap().next().is_none(), "nothing backed up");
    assert!(
        !b["assertions"].as_array().unwrap().iter().any(|a| a["name"].as_str().unwrap().contains("plant")),
        "{b:#}"
    );
    run.teardown();
}

/// The example with its backup pre-hook replaced by `hook` (compose-interpolated, so `$$` is the
/// shell's `$`), committed as the head.
fn with_pre_hook(run: &Run, hook: &str) {
    let repo = run.sb.root.join("hello");
    let compose = std::fs::read_to_string(repo.join("compose.yml")).unwrap();
    let edited: Vec<String> = compose
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("- \"backupbot.backup.pre-hook=") {
                format!("        - \"backupbot.backup.pre-hook={hook}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_ne!(edited.join("\n"), compose.trim_end(), "the pre-hook line was found");
    std::fs::write(repo.join("compose.yml"), edited.join("\n") + "\n").unwrap();
    let out =
        Command::new("git").arg("-C").arg(&repo).args(["commit", "-q", "-am", "hostile pre-hook"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_symlink_the_app_puts_in_its_volume_never_leads_the_backup_to_write_on_the_host() {
    // The app owns its volume's content: the labelled path `dump`, or a file named like the
    // run's canary, made a symlink to a host directory or file, must not be followed.
    let cases = [
        ("bk-link-dir", "rm -rf /data/dump && ln -s {victim_dir} /data/dump", "resolves to"),
        (
            "bk-link-canary",
            "mkdir -p /data/dump && s=${STACK_NAME} && ln -sf {victim_file} /data/dump/ccci-canary-$${s%%_*}-data",
            "/dump/ccci-canary-",
        ),
    ];
    for (name, hook, says) in cases {
        let run = Run::new(name, "ok");
        let victim_dir = run.sb.root.join("host-dir");
        std::fs::create_dir_all(&victim_dir).unwrap();
        let victim_file = victim_dir.join("host-file");
        std::fs::write(&victim_file, "the host's own bytes\n").unwrap();
        let hook = hook
            .replace("{victim_dir}", &victim_dir.display().to_string())
            .replace("{victim_file}", &victim_file.display().to_string());
        with_pre_hook(&run, &hook);
        let codes = run.pipe(&[BACKUP]);
        let names: Vec<String> = std::fs::read_dir(&victim_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["host-file"], "{name}: nothing was written into the host directory");
        assert_eq!(std::fs::read_to_string(&victim_file).unwrap(), "the host's own bytes\n", "{name}: host file kept");
        assert_eq!(codes, [1], "{name}");
        let s = run.state();
        let b = op(&s, "backup");
        assert_eq!(b["result"], "fail", "{name}: {b:#}");
        let detail = b["detail"].as_str().unwrap();
        assert!(detail.starts_with("volume data: ") && detail.contains(says), "{name}: {detail}");
        assert!(detail.contains("refused, not followed"), "{name}: {detail}");
        run.teardown();
    }
}

#[test]
fn a_symlink_the_app_puts_where_a_restored_directory_goes_never_leads_the_restore_to_write_on_the_host() {
    // Between backup and restore the app replaces the backed-up directory `dump` by a symlink to
    // a host directory (its restore pre-hook runs after ccci changed the canaries): the restore
    // puts the directory back in the volume and writes nothing on the host.
    let run = Run::new("bk-link-restore", "ok");
    let victim_dir = run.sb.root.join("host-dir");
    std::fs::create_dir_all(&victim_dir).unwrap();
    let repo = run.sb.root.join("hello");
    let compose = std::fs::read_to_string(repo.join("compose.yml")).unwrap();
    let hook = format!(
        "        - \"backupbot.restore.pre-hook=rm -rf /data/dump && ln -s {} /data/dump\"",
        victim_dir.display()
    );
    let edited: Vec<String> = compose
        .lines()
        .flat_map(|l| {
            if l.trim_start().starts_with("- \"backupbot.restore.post-hook=") {
                vec![hook.clone(), l.to_string()]
            } else {
                vec![l.to_string()]
            }
        })
        .collect();
    assert_ne!(edited.join("\n"), compose.trim_end(), "the post-hook line was found");
    std::fs::write(repo.join("compose.yml"), edited.join("\n") + "\n").unwrap();
    let out = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["commit", "-q", "-am", "hostile restore pre-hook"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let codes = run.pipe(&[BACKUP, RESTORE, ASSERT_RESTORE]);
    let names: Vec<String> = std::fs::read_dir(&victim_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.is_empty(), "the restore wrote into the host directory: {names:?}");
    assert_eq!(codes, [0, 0, 0], "{:#}", run.state());
    let s = run.state();
    let r = op(&s, "restore");
    assert_eq!(assertion(r, "canaries restored")["result"], "pass", "{r:#}");
    let hooks = r["backup"]["hooks"].to_string();
    assert!(hooks.contains("ln -s"), "the hostile pre-hook ran: {hooks}");
    run.teardown();
}
