//! What a service's traefik labels say about how a visitor reaches it: its HTTP routers, the
//! hosts their rules route, and the port traefik sends their requests to.
//!
//! The shapes come from traefik's docker/swarm provider (doc.traefik.io, "Docker & Swarm
//! routing configuration") as Co-op Cloud recipes use them:
//!
//! - `traefik.enable=true` (Co-op Cloud's traefik does not expose services by default);
//! - `traefik.http.routers.<router>.rule=Host(`a`, `b`) || HostRegexp(`{sub:\w+}.a`) && PathPrefix(`/x`)`;
//! - `traefik.http.routers.<router>.service=<service>` (or `<name>@<provider>` for a service
//!   another provider defines, such as traefik's own `api@internal`);
//! - `traefik.http.services.<service>.loadbalancer.server.port=<port>`; a router without a
//!   `service` label uses the only service the labels define.
//!
//! Label keys are matched without regard to case, as traefik does; router and service names are
//! kept as written.

use std::collections::BTreeMap;

/// One HTTP router of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    pub name: String,
    /// The rule as labelled (`Host(`x`) || Host(`y`)`); empty when the router has no rule label.
    pub rule: String,
    /// The router's `service` label, when it has one.
    pub service: Option<String>,
}

/// The traefik routing a service's labels declare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// `traefik.enable`: `Some(true)` only for `true` (any case).
    pub enabled: Option<bool>,
    /// By router name.
    pub routers: Vec<Router>,
    /// `loadbalancer.server.port` by service name, as labelled (a number, or a named port).
    pub ports: BTreeMap<String, String>,
}

/// Where a router sends a visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// A port of this service's tasks.
    Port(u16),
    /// A service another provider defines (`api@internal`): not a port of this service.
    Elsewhere(String),
    /// Nothing usable: why, in words.
    Unknown(String),
}

impl Routing {
    /// Reads the routing from a service's labels (compose `deploy.labels`, already interpolated).
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Routing {
        let mut routing = Routing::default();
        let mut routers: BTreeMap<String, Router> = BTreeMap::new();
        for (key, value) in labels {
            let lower = key.to_ascii_lowercase();
            if lower == "traefik.enable" {
                routing.enabled = Some(value.trim().eq_ignore_ascii_case("true"));
                continue;
            }
            if let Some(rest) = strip_prefix_ci(key, "traefik.http.routers.") {
                let Some((name, attr)) = rest.rsplit_once('.') else { continue };
                let r = routers.entry(name.to_string()).or_insert_with(|| Router {
                    name: name.to_string(),
                    rule: String::new(),
                    service: None,
                });
                match attr.to_ascii_lowercase().as_str() {
                    "rule" => r.rule = value.clone(),
                    "service" => r.service = Some(value.trim().to_string()),
                    _ => {}
                }
            } else if let Some(rest) = strip_prefix_ci(key, "traefik.http.services.")
                && let Some(name) = strip_suffix_ci(rest, ".loadbalancer.server.port")
            {
                routing.ports.insert(name.to_string(), value.trim().to_string());
            }
        }
        // A router named only by another attribute (middlewares, tls) is still a router.
        routing.routers = routers.into_values().collect();
        routing
    }

    /// Whether the labels declare any HTTP router.
    pub fn has_routers(&self) -> bool {
        !self.routers.is_empty()
    }

    /// Where `router` sends its requests.
    pub fn upstream(&self, router: &Router) -> Upstream {
        let service = match &router.service {
            Some(s) if s.contains('@') && !s.ends_with("@docker") && !s.ends_with("@swarm") => {
                return Upstream::Elsewhere(s.clone());
            }
            Some(s) => s.split('@').next().unwrap_or(s).to_string(),
            None => match self.ports.keys().collect::<Vec<_>>().as_slice() {
                [only] => only.to_string(),
                [] => {
                    return Upstream::Unknown(
                        "no traefik.http.services.<name>.loadbalancer.server.port label names the port \
                         (traefik on swarm needs one)"
                            .into(),
                    );
                }
                many => {
                    let names: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                    return Upstream::Unknown(format!(
                        "it names no service and the labels define several ({}): traefik cannot choose",
                        names.join(", ")
                    ));
                }
            },
        };
        match self.ports.get(&service) {
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port > 0 => Upstream::Port(port),
                _ => Upstream::Unknown(format!(
                    "service {service}'s loadbalancer.server.port is {p:?}, not a port number"
                )),
            },
            None => Upstream::Unknown(format!(
                "its service {service} has no traefik.http.services.{service}.loadbalancer.server.port label"
            )),
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(cut) && s[cut..].eq_ignore_ascii_case(suffix)).then(|| &s[..cut])
}

/// One host matcher of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatcher {
    /// `Host(`a`, `b`)`: each name exactly (without regard to case).
    Host(Vec<String>),
    /// `HostRegexp(`…`)`: a traefik v2 template (`{name:regex}.example.com`) or a v3 regular
    /// expression (`^.+\.example\.com$`).
    Regexp(Vec<String>),
}

/// The host matchers of a rule, in order. Matchers under a negation (`!Host(…)`) route nothing
/// and are left out; other matchers (`PathPrefix`, `Headers`) narrow a route but do not decide
/// the host, so they are ignored.
pub fn host_matchers(rule: &str) -> Vec<HostMatcher> {
    let mut out = vec![];
    let bytes = rule.as_bytes();
    let mut i = 0;
    while i < rule.len() {
        let rest = &rule[i..];
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let kind = if !starts_word {
            None
        } else if strip_prefix_ci(rest, "HostRegexp(").is_some() {
            Some(("HostRegexp(".len(), true))
        } else if strip_prefix_ci(rest, "Host(").is_some() {
            Some(("Host(".len(), false))
        } else {
            None
        };
        let Some((len, regexp)) = kind else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let negated = rule[..i].trim_end().ends_with('!');
        let (args, used) = arguments(&rest[len..]);
        i += len + used;
        if negated || args.is_empty() {
            continue;
        }
        out.push(if regexp { HostMatcher::Regexp(args) } else { HostMatcher::Host(args) });
    }
    out
}

/// The quoted arguments up to the closing parenthesis, and how many bytes they took.
fn arguments(s: &str) -> (Vec<String>, usize) {
    let mut args = vec![];
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            ')' => return (args, i + 1),
            '`' | '"' | '\'' => {
                let mut arg = String::new();
                for (_, d) in chars.by_ref() {
                    if d == c {
                        break;
                    }
                    arg.push(d);
                }
                args.push(arg);
            }
            _ => {}
        }
    }
    (args, s.len())
}

impl HostMatcher {
    /// Whether this matcher routes requests for `domain`.
    pub fn routes(&self, domain: &str) -> bool {
        match self {
            HostMatcher::Host(names) => names.iter().any(|n| n.trim().eq_ignore_ascii_case(domain)),
            HostMatcher::Regexp(patterns) => patterns.iter().any(|p| {
                regex_lite::Regex::new(&host_regex(p)).is_ok_and(|re| re.is_match(&domain.to_ascii_lowercase()))
            }),
        }
    }
}

/// A `HostRegexp` argument as an anchored, case-insensitive regular expression. A traefik v2
/// template has `{name}` or `{name:regex}` parts between literal text (dots are literal); a v3
/// argument is a regular expression already.
fn host_regex(pattern: &str) -> String {
    let template = regex_lite::Regex::new(r"\{[A-Za-z_][A-Za-z0-9_]*(:[^{}]*(\{[^{}]*\}[^{}]*)*)?\}").expect("valid");
    if !template.is_match(pattern) {
        let p = pattern.trim_start_matches('^').trim_end_matches('$');
        return format!("(?i)^(?:{p})$");
    }
    let mut out = String::from("(?i)^");
    let mut last = 0;
    for m in template.find_iter(pattern) {
        out.push_str(&regex_lite::escape(&pattern[last..m.start()]));
        let inner = &pattern[m.start() + 1..m.end() - 1];
        match inner.split_once(':') {
            Some((_, re)) => out.push_str(&format!("(?:{re})")),
            None => out.push_str("[^.]+"),
        }
        last = m.end();
    }
    out.push_str(&regex_lite::escape(&pattern[last..]));
    out.push('$');
    out
}

/// Whether `rule` routes requests for `domain`.
pub fn rule_routes(rule: &str, domain: &str) -> bool {
    host_matchers(rule).iter().any(|m| m.routes(domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const D: &str = "hell-3fa9c2.ccci.localhost";

    #[test]
    fn rules_route_the_hosts_they_name_in_every_form_recipes_use() {
        let routes = |rule: &str| rule_routes(rule, D);
        assert!(routes("Host(`hell-3fa9c2.ccci.localhost`)"));
        assert!(routes("Host(`HELL-3fa9c2.ccci.localhost`)"), "hosts match without regard to case");
        assert!(routes("Host(`www.hell-3fa9c2.ccci.localhost`, `hell-3fa9c2.ccci.localhost`)"));
        assert!(routes("Host(`x.example.com`) || Host(`hell-3fa9c2.ccci.localhost`)"));
        assert!(routes("Host(`hell-3fa9c2.ccci.localhost`) && PathPrefix(`/fss-cms`)"));
        assert!(routes("host(\"hell-3fa9c2.ccci.localhost\")"), "traefik v2 accepts either quote");
        assert!(routes(r"HostRegexp(`{subdomain:[a-z0-9-]+}.ccci.localhost`)"), "a v2 template");
        assert!(!routes(r"HostRegexp(`{subdomain:\w+}.ccci.localhost`)"), "\\w has no hyphen");
        assert!(routes(r"HostRegexp(`{name}.ccci.localhost`)"));
        assert!(routes(r"HostRegexp(`^.+\.ccci\.localhost$`)"), "a v3 regular expression");
        assert!(routes(r"HostRegexp(`{x:[a-z]{4}-[0-9a-f]{6}}.ccci.localhost`)"), "braces inside a template part");

        assert!(!routes("Host(`traefikonly.example.com`)"));
        assert!(!routes("Host(`hell-3fa9c2.ccci.localhost.evil`)"));
        assert!(!routes("Host(`www.hell-3fa9c2.ccci.localhost`)"));
        assert!(!routes(r"HostRegexp(`{subdomain:\w+}.hell-3fa9c2.ccci.localhost`)"), "needs a subdomain");
        assert!(!routes("!Host(`hell-3fa9c2.ccci.localhost`)"), "a negation routes nothing");
        assert!(!routes("PathPrefix(`/`)"));
        assert!(!routes("VirtualHost(`hell-3fa9c2.ccci.localhost`)"), "only whole matcher names");
        assert!(!routes(""));
    }

    #[test]
    fn host_matchers_are_read_in_order() {
        assert_eq!(
            host_matchers(r"Host(`a`, `b`) || HostRegexp(`{s:\w+}.a`)"),
            [HostMatcher::Host(vec!["a".into(), "b".into()]), HostMatcher::Regexp(vec![r"{s:\w+}.a".into()])]
        );
    }

    #[test]
    fn routers_and_their_ports_come_from_the_labels() {
        let r = Routing::from_labels(&labels(&[
            ("traefik.enable", "true"),
            ("traefik.http.routers.s.rule", "Host(`a`)"),
            ("traefik.http.routers.s.entrypoints", "web-secure"),
            ("traefik.http.services.s.loadbalancer.server.port", "8080"),
            ("coop-cloud.s.version", "1.0.0+1"),
        ]));
        assert_eq!(r.enabled, Some(true));
        assert_eq!(r.routers, [Router { name: "s".into(), rule: "Host(`a`)".into(), service: None }]);
        assert_eq!(r.upstream(&r.routers[0]), Upstream::Port(8080), "the only service");

        let r = Routing::from_labels(&labels(&[
            ("Traefik.Enable", "TRUE"),
            ("traefik.http.routers.web.Rule", "Host(`a`)"),
            ("traefik.http.routers.web.service", "app@docker"),
            ("traefik.http.routers.dash.rule", "Host(`b`)"),
            ("traefik.http.routers.dash.service", "api@internal"),
            ("traefik.http.routers.bare.rule", "Host(`c`)"),
            ("traefik.http.services.app.loadbalancer.server.port", "3000"),
            ("traefik.http.services.metrics.LoadBalancer.Server.Port", "9100"),
            ("traefik.http.services.named.loadbalancer.server.port", "web"),
        ]));
        assert_eq!(r.enabled, Some(true), "keys and the value match without regard to case");
        let by = |n: &str| r.routers.iter().find(|x| x.name == n).unwrap().clone();
        assert_eq!(r.upstream(&by("web")), Upstream::Port(3000), "the router's service");
        assert_eq!(r.upstream(&by("dash")), Upstream::Elsewhere("api@internal".into()));
        assert!(matches!(r.upstream(&by("bare")), Upstream::Unknown(m) if m.contains("several (app, metrics, named)")));
        let named = Router { name: "n".into(), rule: String::new(), service: Some("named".into()) };
        assert!(matches!(r.upstream(&named), Upstream::Unknown(m) if m.contains("\"web\", not a port number")));
        let missing = Router { name: "m".into(), rule: String::new(), service: Some("gone".into()) };
        assert!(matches!(r.upstream(&missing), Upstream::Unknown(m) if m.contains("service gone has no")));

        let r = Routing::from_labels(&labels(&[("traefik.http.routers.x.rule", "Host(`a`)")]));
        assert_eq!(r.enabled, None);
        assert!(matches!(r.upstream(&r.routers[0]), Upstream::Unknown(m) if m.contains("names the port")));
        assert!(!Routing::from_labels(&labels(&[("traefik.enable", "false")])).has_routers());
    }
}
