//! Files inside a run's volumes, reached only through a probe container that mounts the volume
//! ([`crate::swarm::docker::volume_script`]): a symlink the app put anywhere on the way resolves
//! inside that container, never on the host. Used to plant, change, read and remove the backup's
//! canaries.

use std::path::Path;

use xshell::Shell;

use crate::error::{Error, Result};
use crate::run::state::{RunState, VolumeEvidence};

/// Fails (the recipe's fault) when `path`, under the volume's host directory `mountpoint`,
/// resolves outside it: the app owns what is in its volumes, and a symlink there (`dump ->
/// /etc`) would make the host read or write its own files. A path that does not exist is fine.
pub(crate) fn within_volume(volume: &str, mountpoint: &Path, path: &Path) -> Result<()> {
    let root = fs_err::canonicalize(mountpoint)?;
    match std::fs::canonicalize(path) {
        Ok(real) if !real.starts_with(&root) => Err(Error::failed(format!(
            "volume {volume}: {} resolves to {}, outside the volume (a symlink the app wrote): refused, not followed",
            path.display(),
            real.display()
        ))),
        _ => Ok(()),
    }
}

/// Where the host path `path` (under the mountpoint of the backed-up volume `volume`, a compose
/// key) is: the volume's swarm name and the path relative to the volume's root. Errors
/// (environment) when the evidence has no such volume or the path is not under it.
pub(crate) fn in_volume<'a>(volumes: &'a [VolumeEvidence], volume: &str, path: &Path) -> Result<(&'a str, String)> {
    let v = volumes
        .iter()
        .find(|v| v.volume == volume)
        .ok_or_else(|| Error::env(format!("the backup evidence has no volume {volume} (for {})", path.display())))?;
    let rel = path.strip_prefix(&v.mountpoint).map_err(|_| {
        Error::env(format!("{} is not under volume {volume}'s directory {}", path.display(), v.mountpoint.display()))
    })?;
    Ok((v.name.as_str(), rel.display().to_string()))
}

/// Writes `bytes` to the file `path` (a host path under the mountpoint of `volume`) from a
/// probe container that mounts the volume ([`crate::swarm::docker::volume_script`]): a symlink the app
/// put anywhere on the way resolves inside that container, never on the host. A new file when
/// `new`, else an existing regular file; a symlink or other file in the way is the recipe's
/// failure.
pub(crate) fn write_in_volume(
    sh: &Shell,
    state: &RunState,
    volumes: &[VolumeEvidence],
    volume: &str,
    path: &Path,
    bytes: &[u8],
    new: bool,
) -> Result<()> {
    let (name, rel) = in_volume(volumes, volume, path)?;
    let script = r#"f="/v/$1"
[ -L "$f" ] && exit 5
if [ "$2" = new ]; then [ -e "$f" ] && exit 4; else [ -f "$f" ] || exit 6; fi
cat > "$f" || exit 7"#;
    let (code, _) = crate::swarm::docker::volume_script(
        sh,
        &state.stack,
        name,
        None,
        script,
        &[&rel, if new { "new" } else { "existing" }],
        bytes,
    )?;
    let refused = |why: &str| {
        Error::failed(format!("volume {volume}: {} {why}: refused, not followed or replaced", path.display()))
    };
    match code {
        0 => Ok(()),
        5 => Err(refused("is a symlink the app wrote")),
        4 => Err(refused("already exists (the app wrote it)")),
        6 => Err(refused("is not a regular file")),
        _ => Err(Error::failed(format!(
            "volume {volume}: {} could not be written (its directory is gone or not a directory)",
            path.display()
        ))),
    }
}

/// The bytes of the regular file `path` in a volume, read through a probe container like
/// [`write_in_volume`] writes; `None` when there is none (a symlink there counts as none).
pub(crate) fn read_in_volume(
    sh: &Shell,
    state: &RunState,
    volumes: &[VolumeEvidence],
    volume: &str,
    path: &Path,
) -> Result<Option<Vec<u8>>> {
    let (name, rel) = in_volume(volumes, volume, path)?;
    let script = r#"f="/v/$1"; [ -L "$f" ] && exit 3; [ -f "$f" ] || exit 3; cat "$f" || exit 7"#;
    match crate::swarm::docker::volume_script(sh, &state.stack, name, None, script, &[&rel], b"")? {
        (0, out) => Ok(Some(out)),
        (3, _) => Ok(None),
        (code, _) => Err(Error::env(format!("reading {} in volume {volume}: exit {code}", path.display()))),
    }
}

/// Removes `path` from a volume through a probe container (never following a symlink there);
/// true when something was there.
pub(crate) fn remove_in_volume(
    sh: &Shell,
    state: &RunState,
    volumes: &[VolumeEvidence],
    volume: &str,
    path: &Path,
) -> Result<bool> {
    let (name, rel) = in_volume(volumes, volume, path)?;
    let script = r#"f="/v/$1"; if [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f" || exit 7; exit 0; fi; exit 3"#;
    match crate::swarm::docker::volume_script(sh, &state.stack, name, None, script, &[&rel], b"")? {
        (0, _) => Ok(true),
        (3, _) => Ok(false),
        (code, _) => Err(Error::env(format!("removing {} in volume {volume}: exit {code}", path.display()))),
    }
}
