//! Release tags: which tags are recipe releases, and their order.

use std::cmp::Ordering;
use std::fmt;

/// A recipe release tag: `<major.minor.patch[-pre]>[+upstream]`, optionally prefixed with `v`.
///
/// Ordering is semver on the recipe part (pre-releases before the release, identifiers compared
/// numerically or lexically); the `+upstream` part is metadata that only breaks ties, lexically
/// (none before some), and the tag name breaks the last ties so that equality is name equality.
#[derive(Debug, Clone)]
pub struct ReleaseTag {
    pub name: String,
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Option<String>,
    pub upstream: Option<String>,
}

/// Parses a release tag; `None` for tags that are not releases.
pub fn parse_release_tag(name: &str) -> Option<ReleaseTag> {
    let s = name.strip_prefix('v').unwrap_or(name);
    let (version, upstream) = match s.split_once('+') {
        Some((v, u)) => (v, Some(u)),
        None => (s, None),
    };
    // `_` is outside semver but appears in the old `1.14.1-rootless_1` scheme.
    let ident = |i: &str| !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if upstream.is_some_and(|u| !u.split('.').all(ident)) {
        return None;
    }
    let (core, pre) = match version.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (version, None),
    };
    if pre.is_some_and(|p| !p.split('.').all(ident)) {
        return None;
    }
    let number = |n: &str| {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse::<u64>().ok()
    };
    let mut parts = core.split('.');
    let (major, minor, patch) = (number(parts.next()?)?, number(parts.next()?)?, number(parts.next()?)?);
    if parts.next().is_some() {
        return None;
    }
    Some(ReleaseTag {
        name: name.to_owned(),
        major,
        minor,
        patch,
        pre: pre.map(str::to_owned),
        upstream: upstream.map(str::to_owned),
    })
}

/// Release tags among `names`, ascending; tags that are not releases are dropped.
pub fn order_release_tags<I: IntoIterator<Item = String>>(names: I) -> Vec<ReleaseTag> {
    let mut tags: Vec<ReleaseTag> = names.into_iter().filter_map(|n| parse_release_tag(&n)).collect();
    tags.sort();
    tags.dedup();
    tags
}

impl ReleaseTag {
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some()
    }
}

impl fmt::Display for ReleaseTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Ord for ReleaseTag {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| cmp_pre(self.pre.as_deref(), other.pre.as_deref()))
            .then_with(|| self.upstream.cmp(&other.upstream))
            .then_with(|| self.name.cmp(&other.name))
    }
}

impl PartialOrd for ReleaseTag {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ReleaseTag {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ReleaseTag {}

/// Semver pre-release precedence: a release sorts after its pre-releases.
fn cmp_pre(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => {
            let mut a = a.split('.');
            let mut b = b.split('.');
            loop {
                match (a.next(), b.next()) {
                    (None, None) => return Ordering::Equal,
                    (None, Some(_)) => return Ordering::Less,
                    (Some(_), None) => return Ordering::Greater,
                    (Some(x), Some(y)) => match cmp_ident(x, y) {
                        Ordering::Equal => {}
                        other => return other,
                    },
                }
            }
        }
    }
}

fn cmp_ident(x: &str, y: &str) -> Ordering {
    let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    match (numeric(x), numeric(y)) {
        // Compared as digit strings so that arbitrarily long numbers cannot overflow.
        (true, true) => {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.cmp(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- Release tags ---------------------------------------------------------------------

    fn names(tags: &[ReleaseTag]) -> Vec<&str> {
        tags.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn release_tags_parse() {
        let t = parse_release_tag("2.0.0+1.0.5-social-amd64").unwrap();
        assert_eq!((t.major, t.minor, t.patch), (2, 0, 0));
        assert_eq!(t.pre, None);
        assert_eq!(t.upstream.as_deref(), Some("1.0.5-social-amd64"));
        let t = parse_release_tag("v2.4.8").unwrap();
        assert_eq!((t.major, t.minor, t.patch, t.upstream.as_deref()), (2, 4, 8, None));
        assert_eq!(t.to_string(), "v2.4.8");
        let t = parse_release_tag("1.0.0-rc.1+2.3").unwrap();
        assert_eq!(t.pre.as_deref(), Some("rc.1"));
        assert!(t.is_prerelease());
        assert!(parse_release_tag("1.14.1-rootless_1").is_some());
        for not_release in [
            "",
            "v",
            "latest",
            "main",
            "1",
            "1.2",
            "1.2.3.4",
            "1.2.x",
            "1.2.3+",
            "1.2.3-",
            "1.2.3-a..b",
            "1.2.3+a b",
            "V1.2.3",
            "vv1.2.3",
            "1.2.3 ",
            "-1.2.3",
            "99999999999999999999.0.0",
            "1.+2.3",
            "１.2.3",
        ] {
            assert!(parse_release_tag(not_release).is_none(), "{not_release:?}");
        }
    }

    #[test]
    fn release_tags_order_by_recipe_semver() {
        let input = [
            "1.10.0+1.0",
            "1.9.0+9.9",
            "v2.4.8",
            "0.3.0",
            "1.0.0",
            "1.0.0-rc.1",
            "1.0.0-beta.11",
            "1.0.0-beta.2",
            "1.0.0-beta",
            "1.0.0-alpha.beta",
            "1.0.0-alpha.1",
            "1.0.0-alpha",
            "not-a-release",
            "latest",
        ];
        let ordered = order_release_tags(input.iter().map(|s| s.to_string()));
        assert_eq!(
            names(&ordered),
            [
                "0.3.0",
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0",
                "1.9.0+9.9",
                "1.10.0+1.0",
                "v2.4.8",
            ]
        );
    }

    #[test]
    fn release_tags_upstream_only_breaks_ties() {
        let ordered = order_release_tags(
            ["1.0.1+1.0", "1.0.0+2.0", "1.0.0+10.0", "1.0.0", "v1.0.0", "1.0.0+2.0"].map(String::from),
        );
        // Lexical, so "10.0" sorts before "2.0"; the name settles "1.0.0" against "v1.0.0";
        // duplicates collapse.
        assert_eq!(names(&ordered), ["1.0.0", "v1.0.0", "1.0.0+10.0", "1.0.0+2.0", "1.0.1+1.0"]);
        let a = parse_release_tag("1.0.0").unwrap();
        let b = parse_release_tag("v1.0.0").unwrap();
        assert_ne!(a, b);
        assert_eq!(a, parse_release_tag("1.0.0").unwrap());
        // Huge pre-release numbers compare without overflowing.
        let big = parse_release_tag("1.0.0-99999999999999999999999").unwrap();
        let small = parse_release_tag("1.0.0-00000000000000000000002").unwrap();
        assert!(small < big);
    }
}
