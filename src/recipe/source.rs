//! A recipe source (`ccci-deploy --recipe`): what git is given to clone, what may be shown of it,
//! the credentials it carried, and the repository identity the allowlist approves.
//!
//! Only three kinds of source are accepted, the transports git is allowed to use
//! (`docs/decisions.md`, "Recipe sources and repository identities"):
//!
//! - `https://[user[:password]@]host[:port]/seg/…/name[.git][/]`
//! - `ssh://[user@]host[:port]/seg/…/name[.git][/]` and scp-style `[user@]host:[/]seg/…/name[.git]`
//! - a local path (absolute or relative) or `file:///abs/path`
//!
//! Anything else (`http://`, `git://`, `ext::…`, `fd::…`, any other `<scheme>://` or
//! `<transport>::`) is bad input. The URL git receives is rebuilt from the parsed parts, so what
//! is cloned is exactly what was identified (no parser of git's can read it differently).
//!
//! The identity (see [`Identity`]) folds the spellings of one repository together: the scheme and
//! user, a default port, a trailing `/`, one trailing `.git` and letter case do not count.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// A repository identity as the allowlist names it, in canonical form:
///
/// - a forge repository: `host[:port]/owner/name` (more path segments allowed, at least two),
///   all lower-case; the port only when it is not the source scheme's default (443 for https, 22
///   for ssh); no user, no scheme, no `.git`, no trailing `/`;
/// - a local repository: its absolute path with symlinks resolved (what `realpath` prints), case
///   kept.
///
/// Case is folded for forge repositories because Gitea (like Forgejo, GitHub and GitLab) treats
/// owner and repository names case-insensitively: `Coop-Cloud/Hello` is `coop-cloud/hello`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity(String);

impl Identity {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks a canonical identity read back (from a run-state): it must be in canonical form
    /// already. No file system access: a local path is checked for shape only.
    pub fn parse_canonical(s: &str) -> Result<Identity> {
        let bad = || Error::bad_input(format!("{s:?} is not a canonical repository identity"));
        if s.starts_with('/') {
            let lexical = lexical_path(s).map_err(|_| bad())?;
            return if lexical == s { Ok(Identity(s.to_string())) } else { Err(bad()) };
        }
        match canonical_remote(s) {
            Ok(id) if id.0 == s => Ok(id),
            _ => Err(bad()),
        }
    }

    /// An allowlist entry: a canonical identity (`host[:port]/owner/name`), any `https://` or
    /// `ssh://` URL or scp-style `user@host:owner/name` (normalised like a source), or the
    /// absolute path or `file:///` URL of a local repository (symlinks resolved when it exists).
    /// Err is the reason, for the caller to place (file and line).
    pub fn from_entry(entry: &str) -> std::result::Result<Identity, String> {
        if entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{:?} has a space or control character in it", redact(entry)));
        }
        if !entry.contains(['/', ':']) {
            return Err(format!(
                "{entry:?} is a bare recipe name, but approval is of a repository: write its identity \
                 host/owner/name (e.g. git.coopcloud.tech/coop-cloud/{entry}), its clone URL, or the \
                 absolute path of a local repository"
            ));
        }
        // scp style needs its `user@` here: `host:2222/owner/name` is a canonical identity with a port.
        let scp = is_scp_like(entry) && entry.split(':').next().is_some_and(|h| h.contains('@'));
        if entry.contains("://") || scp || is_transport_syntax(entry) {
            let parsed = parse_url_or_scp(entry).map_err(|e| e.message().to_string())?;
            return match parsed {
                Parsed::Local(p) => Ok(local_identity_lenient(&p)),
                Parsed::Remote(r) => {
                    if r.password.is_some() || (r.user.is_some() && r.scheme == Scheme::Https) {
                        Err(format!("{:?} carries credentials: they have no place in the allowlist", redact(entry)))
                    } else {
                        Ok(r.identity)
                    }
                }
            };
        }
        if entry.starts_with('/') {
            return Ok(local_identity_lenient(Path::new(entry)));
        }
        canonical_remote(entry).map_err(|e| {
            format!(
                "{entry:?} is not a repository identity ({}): write host/owner/name, a https:// or ssh:// URL, \
                 or an absolute path",
                e.message()
            )
        })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Credentials a `https://user:password@…` source carried, percent-decoded as git would. They
/// reach git only through its environment (see [`crate::recipe::git::clone`]); `Debug` hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

impl Credentials {
    /// Replaces every spelling (raw and percent-encoded) of the secret in `text` by `***`: for
    /// quoting a tool's output that might echo it. The secret is the password, or the user name
    /// when there is no password (`https://<token>@host/…`); a user name next to a password is a
    /// login name, and scrubbing a short one (`ci`) would garble unrelated words.
    pub fn scrub(&self, text: &str) -> String {
        let secret = if self.password.is_empty() { &self.username } else { &self.password };
        if secret.is_empty() {
            return text.to_string();
        }
        let encoded = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC).to_string();
        text.replace(secret.as_str(), "***").replace(&encoded, "***")
    }
}

/// A parsed `--recipe`.
#[derive(Clone, Debug)]
pub struct RecipeSource {
    shown: String,
    clone: String,
    credentials: Option<Credentials>,
    identity: Identity,
    local: bool,
}

impl RecipeSource {
    /// Parses and checks a source; a local path must exist (its identity is its real path).
    /// Errors are bad input, and never quote credentials.
    pub fn parse(source: &str) -> Result<RecipeSource> {
        if source.is_empty() || source.starts_with('-') || source.chars().any(|c| c.is_control()) {
            return Err(Error::bad_input(format!(
                "invalid recipe source {:?}: give a https:// or ssh:// URL or a local path",
                redact(source)
            )));
        }
        let parsed = if source.contains("://") || is_scp_like(source) || is_transport_syntax(source) {
            parse_url_or_scp(source)?
        } else {
            Parsed::Local(PathBuf::from(source))
        };
        match parsed {
            Parsed::Local(path) => {
                let real = fs_err::canonicalize(&path)
                    .map_err(|_| Error::bad_input(format!("recipe source {} does not exist", path.display())))?;
                let real_s = real.to_str().ok_or_else(|| {
                    Error::bad_input(format!("recipe source {}: its real path is not UTF-8", path.display()))
                })?;
                Ok(RecipeSource {
                    shown: path.display().to_string(),
                    clone: real_s.to_string(),
                    credentials: None,
                    identity: Identity(real_s.to_string()),
                    local: true,
                })
            }
            Parsed::Remote(r) => {
                if r.password.is_some() && r.scheme == Scheme::Ssh {
                    return Err(Error::bad_input(format!(
                        "invalid recipe source {:?}: ssh sources cannot carry a password (ssh authenticates with keys)",
                        redact(source)
                    )));
                }
                let credentials = match r.scheme {
                    Scheme::Https if r.user.is_some() || r.password.is_some() => Some(Credentials {
                        username: r.user.clone().unwrap_or_default(),
                        password: r.password.clone().unwrap_or_default(),
                    }),
                    _ => None,
                };
                let shown = r.shown();
                Ok(RecipeSource { clone: shown.clone(), shown, credentials, identity: r.identity, local: false })
            }
        }
    }

    /// The source as it may be shown and stored: no password, no https user.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// What git is given to clone: the rebuilt URL (no credentials) or the real local path.
    pub fn clone_url(&self) -> &str {
        &self.clone
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn is_local(&self) -> bool {
        self.local
    }
}

/// `text` with everything up to its last `@` hidden, for quoting a source that may carry
/// credentials and could not be parsed (or is being refused): `https://***@host/…`.
pub fn redact(text: &str) -> String {
    match text.rfind('@') {
        None => text.to_string(),
        Some(at) => match text.find("://") {
            Some(s) if s < at => format!("{}://***{}", &text[..s], &text[at..]),
            _ => format!("***{}", &text[at..]),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Https,
    Ssh,
}

#[derive(Debug)]
enum Parsed {
    Local(PathBuf),
    Remote(Remote),
}

#[derive(Debug)]
struct Remote {
    scheme: Scheme,
    scp: bool,
    /// Percent-decoded (https) or as given (ssh login name).
    user: Option<String>,
    password: Option<String>,
    /// Lower-case; IPv6 in brackets.
    host: String,
    /// Only a non-default port.
    port: Option<u16>,
    /// The path as given (case and `.git` kept), without trailing `/`; scp-style keeps whether it
    /// was absolute by its leading `/`.
    path: String,
    identity: Identity,
}

impl Remote {
    fn shown(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        match (self.scheme, self.scp) {
            (Scheme::Ssh, true) => {
                let user = self.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
                format!("{user}{}:{}", self.host, self.path)
            }
            (Scheme::Ssh, false) => {
                let user = self.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
                format!("ssh://{user}{}{port}/{}", self.host, self.path)
            }
            (Scheme::Https, _) => format!("https://{}{port}/{}", self.host, self.path),
        }
    }
}

/// git's rule (`url_is_local_not_ssh`): a `:` with no `/` before it makes `host:path`.
fn is_scp_like(s: &str) -> bool {
    match (s.find(':'), s.find('/')) {
        (Some(colon), Some(slash)) => colon < slash,
        (Some(_), None) => true,
        _ => false,
    }
}

/// git's remote-helper syntax `<transport>::<address>` (`ext::`, `fd::`, …).
fn is_transport_syntax(s: &str) -> bool {
    match s.find("::") {
        Some(i) => i > 0 && s[..i].bytes().all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b)),
        None => false,
    }
}

const ALLOWED: &str = "only https://, ssh:// (or scp-style user@host:owner/name) and local paths are allowed";

fn parse_url_or_scp(s: &str) -> Result<Parsed> {
    if is_transport_syntax(s) {
        let transport = &s[..s.find("::").unwrap_or(0)];
        return Err(Error::bad_input(format!(
            "invalid recipe source {:?}: the git transport {transport}:: is not allowed: {ALLOWED}",
            redact(s)
        )));
    }
    if let Some(i) = s.find("://") {
        let scheme = s[..i].to_ascii_lowercase();
        let rest = &s[i + 3..];
        return match scheme.as_str() {
            "https" => parse_hierarchical(s, Scheme::Https, rest).map(Parsed::Remote),
            "ssh" => parse_hierarchical(s, Scheme::Ssh, rest).map(Parsed::Remote),
            "file" => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') || path.contains(['%', '?', '#']) {
                    return Err(Error::bad_input(format!(
                        "invalid recipe source {:?}: a file URL must be file:///absolute/path (no host is allowed)",
                        redact(s)
                    )));
                }
                Ok(Parsed::Local(PathBuf::from(path)))
            }
            _ => Err(Error::bad_input(format!(
                "invalid recipe source {:?}: the scheme {scheme}:// is not allowed: {ALLOWED}",
                redact(s)
            ))),
        };
    }
    // scp-style [user@]host:path
    let colon = s.find(':').expect("scp-like has a colon");
    let (userhost, path) = (&s[..colon], &s[colon + 1..]);
    let (user, host) = match userhost.rfind('@') {
        Some(at) => (Some(&userhost[..at]), &userhost[at + 1..]),
        None => (None, userhost),
    };
    let bad = |why: &str| Error::bad_input(format!("invalid recipe source {:?}: {why}", redact(s)));
    if let Some(u) = user {
        check_ssh_user(u).map_err(|w| bad(&w))?;
    }
    let host = check_host(host).map_err(|w| bad(&w))?;
    let trimmed = path.trim_end_matches('/');
    let segments = check_segments(trimmed.strip_prefix('/').unwrap_or(trimmed)).map_err(|w| bad(&w))?;
    let identity = identity_of(&host, None, &segments);
    Ok(Parsed::Remote(Remote {
        scheme: Scheme::Ssh,
        scp: true,
        user: user.map(String::from),
        password: None,
        host,
        port: None,
        path: trimmed.to_string(),
        identity,
    }))
}

/// `[userinfo@]host[:port]/path` after `https://` or `ssh://`.
fn parse_hierarchical(whole: &str, scheme: Scheme, rest: &str) -> Result<Remote> {
    let bad = |why: &str| Error::bad_input(format!("invalid recipe source {:?}: {why}", redact(whole)));
    // The userinfo ends at the last '@' before the path; a '/' inside it must be percent-encoded.
    let slash = rest.find('/').ok_or_else(|| bad("no repository path (expected …/owner/name)"))?;
    let (authority, path) = (&rest[..slash], &rest[slash + 1..]);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (mut user, mut password) = (None, None);
    if let Some(info) = userinfo {
        let (u, p) = match info.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (info, None),
        };
        let decode = |x: &str| {
            percent_encoding::percent_decode_str(x)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("credentials that are not UTF-8 once percent-decoded"))
        };
        if scheme == Scheme::Ssh {
            // An ssh login name is passed on as given, so it is checked as given.
            check_ssh_user(u).map_err(|w| bad(&w))?;
            user = Some(u.to_string());
        } else {
            user = Some(decode(u)?).filter(|u| !u.is_empty() || p.is_some());
        }
        password = p.map(decode).transpose()?;
    }
    let (host, port) = split_port(hostport).map_err(|w| bad(&w))?;
    let host = check_host(host).map_err(|w| bad(&w))?;
    let default = if scheme == Scheme::Https { 443 } else { 22 };
    let port = port.filter(|p| *p != default);
    let trimmed = path.trim_end_matches('/');
    let segments = check_segments(trimmed).map_err(|w| bad(&w))?;
    let identity = identity_of(&host, port, &segments);
    Ok(Remote { scheme, scp: false, user, password, host, port, path: trimmed.to_string(), identity })
}

/// The canonical form `host[:port]/path` (an allowlist entry or a stored identity). `port`
/// defaults are not dropped here: a canonical identity only carries non-default ones.
fn canonical_remote(s: &str) -> Result<Identity> {
    let slash = s.find('/').ok_or_else(|| Error::bad_input("no /owner/name after the host"))?;
    let (hostport, path) = (&s[..slash], &s[slash + 1..]);
    let (host, port) = split_port(hostport).map_err(Error::bad_input)?;
    let host = check_host(host).map_err(Error::bad_input)?;
    let segments = check_segments(path.trim_end_matches('/')).map_err(Error::bad_input)?;
    Ok(identity_of(&host, port, &segments))
}

fn identity_of(host: &str, port: Option<u16>, segments: &[&str]) -> Identity {
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    let mut segs: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    if let Some(last) = segs.last_mut()
        && let Some(stripped) = segments.last().and_then(|l| l.strip_suffix(".git"))
    {
        *last = stripped.to_ascii_lowercase();
    }
    Identity(format!("{host}{port}/{}", segs.join("/")))
}

fn split_port(hostport: &str) -> std::result::Result<(&str, Option<u16>), String> {
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(end) => {
                let after = &hostport[end + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if after.is_empty() => None,
                    None => return Err("unexpected characters after the ] of the host".into()),
                };
                (&hostport[..=end], port)
            }
            None => return Err("an unclosed [ in the host".into()),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err("the port is not a number from 1 to 65535".into()),
        },
    };
    Ok((host, port))
}

/// A DNS name (ASCII; write an internationalised name in its `xn--` form), an IPv4 address or a
/// bracketed IPv6 address. Returned lower-case.
fn check_host(host: &str) -> std::result::Result<String, String> {
    let lower = host.to_ascii_lowercase();
    let ok = if let Some(inner) = lower.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b":.".contains(&b))
    } else {
        !lower.is_empty()
            && lower.len() <= 253
            && lower.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if ok { Ok(lower) } else { Err("invalid host (letters, digits, inner - and . only; IPv6 in [ ])".into()) }
}

/// An ssh login name: letters, digits, `.`, `_`, `-`, not starting with `-` (ssh would read it
/// as an option).
fn check_ssh_user(user: &str) -> std::result::Result<(), String> {
    let ok = !user.is_empty()
        && !user.starts_with('-')
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok { Ok(()) } else { Err("invalid ssh user (letters, digits, . _ -, not starting with -)".into()) }
}

/// The repository path: at least two segments (owner and name), each of letters, digits, `.`,
/// `_`, `-` (Gitea's own alphabet for owner and repository names), none `.` or `..` or empty,
/// and the last one not only `.git`. Percent-escapes, `~`, `?` and `#` are refused rather than
/// interpreted, so one repository has one spelling.
fn check_segments(path: &str) -> std::result::Result<Vec<&str>, String> {
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() < 2 || segments.iter().any(|s| s.is_empty()) {
        return Err("the repository path is not owner/name (at least two segments, none empty)".into());
    }
    for s in &segments {
        if *s == "." || *s == ".." || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return Err("a repository path segment is not allowed (letters, digits, . _ - only; not . or ..)".into());
        }
    }
    if segments.last().is_some_and(|l| *l == ".git") {
        return Err("the repository name is empty before .git".into());
    }
    Ok(segments)
}

/// The identity of a local repository named in the allowlist: its real path when it exists,
/// else the path with `.`, empty segments and trailing `/` removed (an entry for a repository
/// not there yet approves it once it is, at that path).
fn local_identity_lenient(path: &Path) -> Identity {
    if let Ok(real) = std::fs::canonicalize(path)
        && let Some(s) = real.to_str()
    {
        return Identity(s.to_string());
    }
    Identity(lexical_path(&path.to_string_lossy()).unwrap_or_else(|_| path.to_string_lossy().into_owned()))
}

/// `/a//b/./c/` → `/a/b/c`; `..` is refused (it cannot be resolved without the file system).
fn lexical_path(s: &str) -> std::result::Result<String, ()> {
    let p = Path::new(s);
    if !p.is_absolute() {
        return Err(());
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return Err(()),
        }
    }
    Ok(out.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(source: &str) -> String {
        RecipeSource::parse(source).unwrap_or_else(|e| panic!("{source}: {e}")).identity().to_string()
    }

    fn refused(source: &str) -> String {
        let e = RecipeSource::parse(source).expect_err(source);
        assert_eq!(e.kind().exit_code(), 2, "{source}: {e}");
        e.to_string()
    }

    #[test]
    fn every_spelling_of_a_forge_repository_has_one_identity() {
        for s in [
            "https://git.coopcloud.tech/coop-cloud/hello",
            "https://git.coopcloud.tech/coop-cloud/hello.git",
            "https://git.coopcloud.tech/coop-cloud/hello/",
            "https://git.coopcloud.tech/coop-cloud/hello.git/",
            "https://git.coopcloud.tech/coop-cloud/hello//",
            "HTTPS://Git.CoopCloud.Tech/Coop-Cloud/Hello.git",
            "https://git.coopcloud.tech:443/coop-cloud/hello",
            "https://user:token@git.coopcloud.tech/coop-cloud/hello.git",
            "ssh://git@git.coopcloud.tech/coop-cloud/hello.git",
            "ssh://git@git.coopcloud.tech:22/coop-cloud/hello",
            "ssh://git.coopcloud.tech/coop-cloud/hello",
            "SSH://git@GIT.coopcloud.tech/coop-cloud/HELLO.git",
            "git@git.coopcloud.tech:coop-cloud/hello.git",
            "git@git.coopcloud.tech:/coop-cloud/hello.git",
            "git.coopcloud.tech:coop-cloud/hello",
            "git@git.coopcloud.tech:coop-cloud/hello/",
        ] {
            assert_eq!(id(s), "git.coopcloud.tech/coop-cloud/hello", "{s}");
        }
    }

    #[test]
    fn a_different_owner_host_or_port_is_a_different_repository() {
        let approved = "git.coopcloud.tech/coop-cloud/hello";
        for s in [
            "https://git.coopcloud.tech/mallory/hello",
            "https://git.coopcloud.tech/coop-cloud/hello-world",
            "https://git.coopcloud.tech/coop-cloud/hello/extra",
            "https://evil.example/coop-cloud/hello",
            "https://git.coopcloud.tech.evil.example/coop-cloud/hello",
            "https://git.coopcloud.tech:8443/coop-cloud/hello",
            "ssh://git@git.coopcloud.tech:2222/coop-cloud/hello",
            "git@evil.example:coop-cloud/hello.git",
            "https://git.coopcloud.tech/coop-cloud/hello.git.git",
        ] {
            assert_ne!(id(s), approved, "{s}");
        }
        assert_eq!(id("https://git.coopcloud.tech:8443/coop-cloud/hello"), "git.coopcloud.tech:8443/coop-cloud/hello");
        assert_eq!(
            id("ssh://git@git.coopcloud.tech:2222/coop-cloud/hello"),
            "git.coopcloud.tech:2222/coop-cloud/hello"
        );
        // A port that is the other scheme's default is not a default here.
        assert_eq!(id("https://host.example:22/o/n"), "host.example:22/o/n");
        assert_eq!(id("ssh://host.example:443/o/n"), "host.example:443/o/n");
        assert_eq!(id("https://[::1]:3000/o/n"), "[::1]:3000/o/n");
        assert_eq!(id("https://host.example/group/sub/n.git"), "host.example/group/sub/n");
    }

    #[test]
    fn git_is_given_the_rebuilt_url_without_credentials() {
        let s = RecipeSource::parse("https://alice:s3cr%40t@Git.Example:443/Owner/Name.git/").unwrap();
        assert_eq!(s.clone_url(), "https://git.example/Owner/Name.git");
        assert_eq!(s.shown(), "https://git.example/Owner/Name.git");
        let c = s.credentials().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("alice", "s3cr@t"));
        assert!(!format!("{s:?}").contains("s3cr"), "Debug shows no secret: {s:?}");
        // A token given as the user name (GitHub style) is a credential too.
        let s = RecipeSource::parse("https://tok3n@git.example/o/n").unwrap();
        assert_eq!(s.shown(), "https://git.example/o/n");
        assert_eq!(s.credentials().unwrap().username, "tok3n");
        // ssh keeps its login name; scp style stays scp style (a relative path there is relative
        // to the login's home, unlike ssh://).
        let s = RecipeSource::parse("ssh://git@git.example:2222/o/n.git").unwrap();
        assert_eq!(s.clone_url(), "ssh://git@git.example:2222/o/n.git");
        assert!(s.credentials().is_none());
        let s = RecipeSource::parse("git@Git.Example:o/n.git").unwrap();
        assert_eq!(s.clone_url(), "git@git.example:o/n.git");
    }

    #[test]
    fn scrub_hides_every_spelling_of_the_secret() {
        let c = Credentials { username: "alice".into(), password: "p@ss word".into() };
        assert_eq!(
            c.scrub("fatal: could not read from https://alice:p%40ss%20word@h/ (p@ss word)"),
            "fatal: could not read from https://alice:***@h/ (***)"
        );
        let token_as_user = Credentials { username: "ghp_T0KEN".into(), password: String::new() };
        assert_eq!(token_as_user.scrub("denied for ghp_T0KEN at h"), "denied for *** at h");
    }

    #[test]
    fn sources_of_any_other_transport_are_refused_as_bad_input() {
        for s in [
            "ext::sh -c touch% /tmp/pwned",
            "fd::17",
            "fd::0,1/hello",
            "http://git.example/o/n.git",
            "HTTP://git.example/o/n.git",
            "git://git.example/o/n.git",
            "ftp://git.example/o/n.git",
            "ftps://git.example/o/n.git",
            "git+ssh://git@git.example/o/n.git",
            "ssh+git://git@git.example/o/n.git",
            "rsync://git.example/o/n.git",
            "testgit::/tmp/x",
            "file://otherhost/srv/hello",
            "file://relative/path",
        ] {
            let e = refused(s);
            assert!(e.contains("not allowed") || e.contains("file:///"), "{s}: {e}");
        }
    }

    #[test]
    fn ambiguous_or_malformed_urls_are_refused() {
        for s in [
            "https://git.example",
            "https://git.example/",
            "https://git.example/hello",
            "https://git.example/o/n?x=1",
            "https://git.example/o/n#frag",
            "https://git.example/o/%68ello",
            "https://git.example/o/../n",
            "https://git.example/o/./n",
            "https://git.example//o/n",
            "https://git.example/~o/n",
            "https://git.example/o/.git",
            "https://git.example:0/o/n",
            "https://git.example:99999/o/n",
            "https://git.example:x/o/n",
            "https://-oProxyCommand=x/o/n",
            "ssh://-oProxyCommand=touch%20x@git.example/o/n",
            "ssh://git@-oProxyCommand=x/o/n",
            "https://git.exa_mple/o/n",
            "https://git.example./o/n",
            "https://gït.example/o/n",
            "https://[::1/o/n",
            "[::1]:o/n",
            "git@git.example:o",
            "git@git.example:",
        ] {
            refused(s);
        }
    }

    #[test]
    fn refusals_never_quote_credentials() {
        for s in [
            "https://alice:T0KEN@git.example",
            "https://alice:T0KEN@git.example/o/n?x",
            "http://alice:T0KEN@git.example/o/n",
            "ssh://alice:T0KEN@git.example/o/n",
            "ftp://T0KEN@git.example/o/n",
            "https://T0KEN@git.example/%2e%2e/n",
            "https://alice:T0KEN/x@git.example/o/n",
            "alice:T0KEN@git.example:o/n",
            "https://alice:T0KEN@bad_host/o/n",
            "ext::T0KEN@x",
            "https://T0KEN@x",
            "https://git.example/T0KEN@y",
            "https://git.example/a@T0KEN/b@c",
            "https://user:T0K/EN@git.example/o/n",
            "ssh://T0KEN;x@git.example/o/n",
        ] {
            let e = refused(s);
            assert!(!e.contains("T0KEN"), "{s}: {e}");
        }
        assert!(refused("ssh://alice:T0KEN@git.example/o/n").contains("ssh://***@git.example/o/n"));
    }

    #[test]
    fn a_local_source_is_its_real_path() {
        let dir = std::env::temp_dir().join(format!("ccci-source-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        fs_err::create_dir_all(dir.join("real/hello")).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
        let real = fs_err::canonicalize(dir.join("real/hello")).unwrap().display().to_string();
        for s in [
            format!("{}/real/hello", dir.display()),
            format!("{}/real/hello/", dir.display()),
            format!("{}/real/./hello", dir.display()),
            format!("{}/link/hello", dir.display()),
            format!("{}/real/hello/../hello", dir.display()),
            format!("file://{}/real/hello", dir.display()),
            format!("file://localhost{}/link/hello", dir.display()),
        ] {
            let src = RecipeSource::parse(&s).unwrap();
            assert_eq!(src.identity().as_str(), real, "{s}");
            assert_eq!(src.clone_url(), real, "{s}: git clones what was identified");
            assert!(src.is_local());
        }
        assert!(refused(&format!("{}/real/nope", dir.display())).contains("does not exist"));
        // Case is kept for paths: a file system is case-sensitive.
        assert_ne!(Identity::from_entry(&real.to_uppercase()).unwrap().as_str(), real);
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn allowlist_entries_normalise_like_sources() {
        let e = |s: &str| Identity::from_entry(s).unwrap_or_else(|e| panic!("{s}: {e}")).to_string();
        for s in [
            "git.coopcloud.tech/coop-cloud/hello",
            "Git.CoopCloud.tech/Coop-Cloud/Hello",
            "git.coopcloud.tech/coop-cloud/hello.git",
            "git.coopcloud.tech/coop-cloud/hello/",
            "https://git.coopcloud.tech/coop-cloud/hello.git",
            "ssh://git@git.coopcloud.tech:22/coop-cloud/hello",
            "git@git.coopcloud.tech:coop-cloud/hello.git",
        ] {
            assert_eq!(e(s), "git.coopcloud.tech/coop-cloud/hello", "{s}");
        }
        assert_eq!(e("git.example:2222/o/n"), "git.example:2222/o/n");
        assert_eq!(e("/srv/recipes//hello/./"), "/srv/recipes/hello");
        assert_eq!(e("file:///srv/recipes/hello"), "/srv/recipes/hello");
    }

    #[test]
    fn a_bare_recipe_name_in_the_allowlist_says_what_to_write_instead() {
        let why = Identity::from_entry("hello").unwrap_err();
        assert!(why.contains("bare recipe name"), "{why}");
        assert!(why.contains("git.coopcloud.tech/coop-cloud/hello"), "{why}");
    }

    #[test]
    fn allowlist_entries_that_are_no_identity_are_refused() {
        for s in [
            "https://user:T0KEN@git.example/o/n",
            "https://T0KEN@git.example/o/n",
            "http://git.example/o/n",
            "ext::sh -c x",
            "git.example/hello",
            "./hello",
            "hello/",
            "git.example:x/o/n",
            "git.example/o/n extra",
        ] {
            let why = Identity::from_entry(s).expect_err(s);
            assert!(!why.contains("T0KEN"), "{why}");
        }
    }

    #[test]
    fn a_stored_identity_must_be_canonical() {
        for ok in ["git.example/o/n", "git.example:2222/o/n", "/srv/x/hello", "[::1]:3000/o/n"] {
            Identity::parse_canonical(ok).unwrap();
        }
        for bad in ["Git.example/o/n", "git.example/o/n.git", "git.example/o/n/", "hello", "/srv/../x", "/srv//x", ""] {
            assert!(Identity::parse_canonical(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redact_hides_everything_before_the_last_at() {
        assert_eq!(redact("https://a:b@h/o/n"), "https://***@h/o/n");
        assert_eq!(redact("a:b@h:o/n"), "***@h:o/n");
        assert_eq!(redact("/tmp/hello"), "/tmp/hello");
    }
}
