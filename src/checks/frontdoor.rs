//! The front door: the operator's proxy (traefik on a Co-op Cloud server), asked the way a
//! visitor's browser asks it.
//!
//! `CCCI_PROXY_URL` names where the proxy listens (`https://127.0.0.1:443`). ccci connects there
//! but speaks to the run's domain: TLS with the domain as SNI, the certificate verified for the
//! domain against `CCCI_PROXY_CA_FILE` (PEM) or, without one, the system's roots, and `Host` set
//! to the domain. Redirects are followed only while they stay on the run's domain and scheme; a
//! redirect elsewhere (traefik's HTTP→HTTPS redirect on the `web` entrypoint is one) is not an
//! answer from the app. Answers from the proxy itself are failures that say so: traefik's own
//! 404 (`404 page not found`: no router for the domain), 502/503/504 (the proxy could not reach
//! the app), a certificate not valid for the domain (traefik's `TRAEFIK DEFAULT CERT`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ureq::Agent;
use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::checks::serving::StatusPolicy;
use crate::config;
use crate::error::{Error, Result};
use crate::run::naming::Domain;
use crate::run::state::{Assertion, Outcome};

/// The body traefik answers with when no router matches the request.
pub const TRAEFIK_404: &str = "404 page not found";
/// The subject of the certificate traefik presents for a domain it has no certificate for.
pub const TRAEFIK_DEFAULT_CERT: &str = "TRAEFIK DEFAULT CERT";
/// How many redirects within the run's domain are followed.
const MAX_REDIRECTS: usize = 10;

/// A configured front door, checked when it was read.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    /// `CCCI_PROXY_URL` as given.
    pub url: String,
    /// `https`, or `http` when explicitly allowed.
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// `CCCI_PROXY_CA_FILE`, when set: the only roots trusted.
    pub ca_file: Option<PathBuf>,
    roots: Vec<Certificate<'static>>,
}

impl FrontDoor {
    /// Reads `CCCI_PROXY_URL`, `CCCI_PROXY_CA_FILE` and `CCCI_PROXY_ALLOW_HTTP`. None when no
    /// proxy is configured. Every problem is bad input (exit 2), found before a run is touched.
    pub fn from_env() -> Result<Option<FrontDoor>> {
        let (url, ca, allow_http) = crate::config::proxy_settings()?;
        match url {
            Some(url) => FrontDoor::parse(&url, ca.as_deref(), allow_http).map(Some),
            None => Ok(None),
        }
    }

    /// Checks a proxy URL (`https://host[:port][/]`, no user, path or query) and loads the CA
    /// file (PEM, at least one certificate). `http` only when `allow_http` (tests).
    pub fn parse(url: &str, ca_file: Option<&Path>, allow_http: bool) -> Result<FrontDoor> {
        // Never echo credentials: stderr ends up in public CI logs.
        let shown =
            if url.contains('@') { "(not shown: it holds credentials)".to_string() } else { format!("{url:?}") };
        let bad = |why: String| Error::bad_input(format!("{}={shown}: {why}", config::PROXY_URL.name));
        let uri: Uri = url.trim().parse().map_err(|e| bad(format!("not a URL ({e})")))?;
        let scheme = uri.scheme_str().ok_or_else(|| bad("no scheme: use https://HOST[:PORT]".into()))?;
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "https" => {}
            "http" if allow_http => {}
            "http" => {
                return Err(bad(format!(
                    "plain http is not a front door a visitor uses: use https ({}=1 allows http for tests)",
                    config::PROXY_ALLOW_HTTP.name
                )));
            }
            other => return Err(bad(format!("scheme {other:?} is not https"))),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host".into()))?;
        if authority.as_str().contains('@') {
            return Err(bad("a user or password does not belong in the proxy URL".into()));
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() {
            return Err(bad("no host".into()));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("a path or query is not supported: give the proxy's address only".into()));
        }
        let port = authority.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        let roots = match ca_file {
            Some(p) => load_roots(p)?,
            None => vec![],
        };
        Ok(FrontDoor {
            url: url.trim().to_string(),
            scheme,
            host,
            port,
            ca_file: ca_file.map(Path::to_path_buf),
            roots,
        })
    }

    /// The URL a visitor would use for `path` on `domain` (the proxy's port kept).
    pub fn url_for(&self, domain: &Domain, path: &str) -> String {
        let default = if self.scheme == "https" { 443 } else { 80 };
        let port = if self.port == default { String::new() } else { format!(":{}", self.port) };
        format!("{}://{domain}{port}{path}", self.scheme)
    }

    fn trusted(&self) -> String {
        match &self.ca_file {
            Some(p) => format!("the CA in {}", p.display()),
            None => "the system's roots".into(),
        }
    }

    fn agent(&self, addrs: Vec<SocketAddr>) -> Agent {
        let roots =
            if self.roots.is_empty() { RootCerts::PlatformVerifier } else { RootCerts::new_with_certs(&self.roots) };
        let tls = TlsConfig::builder().provider(TlsProvider::Rustls).root_certs(roots).build();
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(10)))
            .tls_config(tls)
            .build();
        Agent::with_parts(config, DefaultConnector::default(), Fixed(addrs))
    }
}

fn load_roots(path: &Path) -> Result<Vec<Certificate<'static>>> {
    let bad = |why: String| {
        Error::bad_input(format!("{}={:?}: {why}", config::PROXY_CA_FILE.name, path.display().to_string()))
    };
    let pem = fs_err::read(path).map_err(|e| bad(e.to_string()))?;
    let mut certs = vec![];
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(bad(format!("not PEM: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// Every host resolves to the proxy's addresses: the URL names the run's domain (SNI, `Host`,
/// certificate name) while the connection goes to the proxy.
#[derive(Debug)]
struct Fixed(Vec<SocketAddr>);

impl Resolver for Fixed {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> std::result::Result<ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        for a in self.0.iter().take(16) {
            out.push(*a);
        }
        if out.is_empty() { Err(ureq::Error::HostNotFound) } else { Ok(out) }
    }
}

/// What one visit through the front door came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Visit {
    /// The last answer, after the redirects followed.
    Answered { status: u16, body: String, path: Vec<String> },
    /// A redirect not followed: where it pointed.
    RedirectedAway { status: u16, location: String, path: Vec<String> },
    /// The proxy cannot be reached at all: the environment's problem.
    Unreachable(String),
    /// TLS refused: the certificate is not one for the domain from a trusted CA.
    BadCertificate(String),
    /// Anything else (timeouts, broken answers).
    Broken(String),
}

/// Requests `/` on the run's domain through the front door until the app answers with a status
/// the policy accepts (3xx only by being followed) or `timeout` passes. A proxy that cannot be
/// reached at all is an `error` (the environment); every other bad answer is a `fail`.
pub fn check(door: &FrontDoor, domain: &Domain, policy: &StatusPolicy, timeout: Duration) -> Assertion {
    let start = Instant::now();
    let name = format!("serving {domain} through the front door");
    let mut attempts = 0u32;
    let mut seen: Vec<String> = vec![];
    let mut unreachable = true;
    loop {
        attempts += 1;
        let t0 = Instant::now();
        let visit = visit(door, domain);
        let ms = t0.elapsed().as_millis();
        let (good, said) = judge(&visit, door, domain, policy);
        if good {
            return Assertion {
                name,
                result: Outcome::Pass,
                detail: format!("{said} in {ms} ms (attempt {attempts}, via {})", door.url),
                duration_ms: start.elapsed().as_millis() as u64,
                output: None,
            };
        }
        unreachable &= matches!(visit, Visit::Unreachable(_));
        seen.push(said);
        if start.elapsed() >= timeout {
            seen.dedup();
            let last: Vec<_> = seen.iter().rev().take(3).rev().cloned().collect();
            let (result, lead) = if unreachable {
                (Outcome::Error, format!("the front door {} cannot be reached", door.url))
            } else {
                (Outcome::Fail, format!("{} not serving through the front door {}", domain, door.url))
            };
            return Assertion {
                name,
                result,
                detail: format!(
                    "{lead} after {}s and {attempts} attempts; last answers: {}",
                    timeout.as_secs(),
                    last.join("; ")
                ),
                duration_ms: start.elapsed().as_millis() as u64,
                output: None,
            };
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Whether a visit is the app serving, and what it was in words.
fn judge(visit: &Visit, door: &FrontDoor, domain: &Domain, policy: &StatusPolicy) -> (bool, String) {
    let via = |path: &Vec<String>| {
        if path.len() > 1 { format!(" (redirected: {})", path.join(" → ")) } else { String::new() }
    };
    let first = door.url_for(domain, "/");
    match visit {
        Visit::Answered { status, body, path } => {
            let got = format!("GET {first} → {status}{}", via(path));
            let proxy_404 = *status == 404 && body.trim() == TRAEFIK_404;
            if proxy_404 {
                (false, format!("{got}: the proxy's own 404 ({TRAEFIK_404:?}): no router of the proxy routes {domain}"))
            } else if matches!(status, 502..=504) {
                (false, format!("{got}: the proxy could not get an answer from the app"))
            } else if (300..400).contains(status) {
                (false, format!("{got}: still redirecting after {MAX_REDIRECTS} redirects"))
            } else if policy.accepts(*status) {
                (true, got)
            } else {
                (false, format!("{got}: the app's answer"))
            }
        }
        Visit::RedirectedAway { status, location, path } => (
            false,
            format!(
                "GET {first} → {status}{} redirects to {location}, off the run's domain and scheme ({}://{domain}): not followed, a redirect is not the app serving",
                via(path),
                door.scheme
            ),
        ),
        Visit::Unreachable(e) => (false, format!("the proxy does not answer: {e}")),
        Visit::BadCertificate(e) => (
            false,
            format!(
                "the proxy's certificate is not valid for {domain} under {} ({e}); traefik presents its \"{TRAEFIK_DEFAULT_CERT}\" when it has no certificate for the domain",
                door.trusted()
            ),
        ),
        Visit::Broken(e) => (false, format!("GET {first}: {e}")),
    }
}

/// One visit: `/` on the domain, following redirects that stay on it.
fn visit(door: &FrontDoor, domain: &Domain) -> Visit {
    let addrs: Vec<SocketAddr> = match (door.host.as_str(), door.port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return Visit::Unreachable(format!("resolving {}: {e}", door.host)),
    };
    let agent = door.agent(addrs);
    let mut path = "/".to_string();
    let mut trail = vec![];
    for _ in 0..=MAX_REDIRECTS {
        let url = door.url_for(domain, &path);
        trail.push(url.clone());
        let resp = agent.get(&url).header("Host", domain.as_str()).call();
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => return classify(e),
        };
        let status = resp.status().as_u16();
        if (300..400).contains(&status)
            && let Some(location) = resp.headers().get("location").and_then(|l| l.to_str().ok())
        {
            match same_site(door, domain, location, &path) {
                Some(next) => {
                    path = next;
                    continue;
                }
                None => {
                    return Visit::RedirectedAway { status, location: location.to_string(), path: trail };
                }
            }
        }
        let body = resp.body_mut().with_config().limit(4096).read_to_string().unwrap_or_default();
        return Visit::Answered { status, body, path: trail };
    }
    Visit::Answered { status: 310, body: String::new(), path: trail }
}

/// The path to follow when `location` stays on the run's domain and the door's scheme; None
/// when it leaves them. Relative locations stay.
fn same_site(door: &FrontDoor, domain: &Domain, location: &str, current: &str) -> Option<String> {
    if location.starts_with("//") {
        return same_site(door, domain, &format!("{}:{location}", door.scheme), current);
    }
    if location.starts_with('/') {
        return Some(location.to_string());
    }
    match location.parse::<Uri>() {
        Ok(uri) if uri.scheme_str().is_some() => {
            let host = uri.host()?;
            let same =
                uri.scheme_str()?.eq_ignore_ascii_case(&door.scheme) && host.eq_ignore_ascii_case(domain.as_str());
            same.then(|| uri.path_and_query().map_or("/".to_string(), |p| p.as_str().to_string()))
        }
        _ => {
            // A relative reference (`login`, `?a=b`): resolved against the current directory.
            let dir = &current[..current.rfind('/').map_or(0, |i| i + 1)];
            Some(format!("{dir}{location}"))
        }
    }
}

fn classify(e: ureq::Error) -> Visit {
    // rustls reports a refused certificate through an I/O error of the TLS stream.
    let text = e.to_string();
    if let Some(i) = text.find("invalid peer certificate") {
        return Visit::BadCertificate(text[i..].to_string());
    }
    match &e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => Visit::Unreachable(e.to_string()),
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::NotConnected
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            ) =>
        {
            Visit::Unreachable(e.to_string())
        }
        ureq::Error::Rustls(r) if r.to_string().contains("certificate") => Visit::BadCertificate(r.to_string()),
        ureq::Error::Tls(t) => Visit::BadCertificate(t.to_string()),
        _ => Visit::Broken(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_settings_are_checked_as_bad_input() {
        let ok = FrontDoor::parse("https://127.0.0.1:8443/", None, false).unwrap();
        assert_eq!((ok.scheme.as_str(), ok.host.as_str(), ok.port), ("https", "127.0.0.1", 8443));
        let ok = FrontDoor::parse("https://proxy.example", None, false).unwrap();
        assert_eq!(ok.port, 443);
        let d = Domain::parse("hell-3fa9c2.ccci.localhost").unwrap();
        assert_eq!(ok.url_for(&d, "/x"), "https://hell-3fa9c2.ccci.localhost/x");
        let ok = FrontDoor::parse("http://127.0.0.1:8080", None, true).unwrap();
        assert_eq!(ok.url_for(&d, "/"), "http://hell-3fa9c2.ccci.localhost:8080/");

        for (url, says) in [
            ("http://127.0.0.1:80", "plain http"),
            ("ftp://proxy.example", "not https"),
            ("127.0.0.1:443", "no scheme"),
            ("https://", "not a URL"),
            ("https://user:pw@proxy.example", "(not shown: it holds credentials): a user or password"),
            ("https://proxy.example/app", "path or query"),
            ("https ://x", "not a URL"),
        ] {
            let e = FrontDoor::parse(url, None, false).unwrap_err();
            assert_eq!(e.kind().exit_code(), 2, "{url}");
            assert!(e.message().contains(says), "{url}: {e}");
            assert!(!e.message().contains("pw"), "credentials shown: {e}");
        }
        let dir = std::env::temp_dir().join(format!("ccci-frontdoor-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let e = FrontDoor::parse("https://x", Some(&dir.join("missing.pem")), false).unwrap_err();
        assert!(e.kind().exit_code() == 2 && e.message().contains(config::PROXY_CA_FILE.name), "{e}");
        fs_err::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
        let e = FrontDoor::parse("https://x", Some(&dir.join("empty.pem")), false).unwrap_err();
        assert!(e.message().contains("holds no PEM certificate"), "{e}");
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn redirects_are_followed_only_on_the_domain_and_scheme() {
        let door = FrontDoor::parse("https://127.0.0.1:8443", None, false).unwrap();
        let d = Domain::parse("hell-3fa9c2.ccci.localhost").unwrap();
        let f = |loc: &str| same_site(&door, &d, loc, "/a/b");
        assert_eq!(f("/login").as_deref(), Some("/login"));
        assert_eq!(f("c?x=1").as_deref(), Some("/a/c?x=1"));
        assert_eq!(f("https://hell-3fa9c2.ccci.localhost/home").as_deref(), Some("/home"));
        assert_eq!(f("https://HELL-3fa9c2.ccci.localhost").as_deref(), Some("/"));
        assert_eq!(f("//hell-3fa9c2.ccci.localhost/x").as_deref(), Some("/x"));
        assert_eq!(f("https://other.example/"), None);
        assert_eq!(f("https://www.hell-3fa9c2.ccci.localhost/"), None);
        assert_eq!(f("http://hell-3fa9c2.ccci.localhost/"), None, "a change of scheme is not followed");
        assert_eq!(f("//other.example/"), None);
    }

    /// A loopback HTTPS server standing in for the proxy: its certificate (for `names`, with
    /// common name `cn`) is signed by a test CA written to `<dir>/ca.pem`; `answer` maps a
    /// request path to a raw HTTP response. Each request's SNI and Host are sent on the channel.
    struct Proxy {
        port: u16,
        ca: PathBuf,
        seen: std::sync::mpsc::Receiver<(Option<String>, String)>,
        dir: PathBuf,
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            let _ = fs_err::remove_dir_all(&self.dir);
        }
    }

    fn proxy(names: &[&str], cn: &str, answer: fn(&str) -> String) -> Proxy {
        serve(names, cn, false, answer)
    }

    /// [`proxy`], or with `self_signed` a server whose certificate signs itself and is what
    /// `ca.pem` holds: an operator's wildcard certificate given as the CA file.
    fn serve(names: &[&str], cn: &str, self_signed: bool, answer: fn(&str) -> String) -> Proxy {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        use std::io::{Read, Write};
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ccci-frontdoor-{}-{n}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "ccci test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert =
            if self_signed { params.self_signed(&key).unwrap() } else { params.signed_by(&key, &ca, &ca_key).unwrap() };
        fs_err::write(dir.join("ca.pem"), if self_signed { cert.pem() } else { ca.pem() }).unwrap();

        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let config = std::sync::Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut req = vec![];
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let Some(path) = text.split_whitespace().nth(1).map(String::from) else { continue };
                let host = text
                    .lines()
                    .find_map(|l| l.strip_prefix("host: ").or_else(|| l.strip_prefix("Host: ")))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                let sni = tls.conn.server_name().map(String::from);
                let _ = tx.send((sni, host));
                let _ = tls.write_all(answer(&path).as_bytes());
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        Proxy { port, ca: dir.join("ca.pem"), seen: rx, dir }
    }

    const DOMAIN: &str = "hell-3fa9c2.ccci.localhost";

    fn response(status: &str, headers: &str, body: &str) -> String {
        format!("HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
    }

    fn ask(p: &Proxy, timeout: Duration) -> Assertion {
        let door = FrontDoor::parse(&format!("https://127.0.0.1:{}", p.port), Some(&p.ca), false).unwrap();
        check(&door, &Domain::parse(DOMAIN).unwrap(), &StatusPolicy { also_accept: vec![] }, timeout)
    }

    #[test]
    fn the_front_door_is_asked_for_the_domain_with_sni_and_host_and_a_verified_certificate() {
        let p = proxy(&[DOMAIN], DOMAIN, |_| response("200 OK", "", "hello"));
        let a = ask(&p, Duration::from_secs(5));
        assert_eq!(a.result, Outcome::Pass, "{}", a.detail);
        assert!(a.detail.starts_with(&format!("GET https://{DOMAIN}:{}/ → 200", p.port)), "{}", a.detail);
        assert_eq!(p.seen.recv().unwrap(), (Some(DOMAIN.to_string()), DOMAIN.to_string()));
    }

    #[test]
    fn the_proxys_own_404_is_a_failure_that_says_no_router_routes_the_domain() {
        let p = proxy(&[DOMAIN], DOMAIN, |_| {
            response("404 Not Found", "content-type: text/plain\r\n", "404 page not found\n")
        });
        let a = ask(&p, Duration::ZERO);
        assert_eq!(a.result, Outcome::Fail);
        assert!(
            a.detail.contains("the proxy's own 404 (\"404 page not found\"): no router of the proxy routes"),
            "{}",
            a.detail
        );
        let p = proxy(&[DOMAIN], DOMAIN, |_| response("404 Not Found", "", "<h1>no such page</h1>"));
        let a = ask(&p, Duration::ZERO);
        assert_eq!(a.result, Outcome::Fail);
        assert!(a.detail.contains("→ 404: the app's answer"), "{}", a.detail);
    }

    #[test]
    fn a_bad_gateway_from_the_proxy_is_a_failure_that_says_so() {
        for status in ["502 Bad Gateway", "503 Service Unavailable", "504 Gateway Timeout"] {
            let p = proxy(
                &[DOMAIN],
                DOMAIN,
                match status {
                    "502 Bad Gateway" => |_: &str| response("502 Bad Gateway", "", "Bad Gateway"),
                    "503 Service Unavailable" => |_: &str| response("503 Service Unavailable", "", ""),
                    _ => |_: &str| response("504 Gateway Timeout", "", ""),
                },
            );
            let a = ask(&p, Duration::ZERO);
            assert_eq!(a.result, Outcome::Fail, "{status}");
            assert!(
                a.detail.contains(&status[..3]) && a.detail.contains("the proxy could not get an answer from the app"),
                "{}",
                a.detail
            );
        }
    }

    #[test]
    fn the_proxys_default_certificate_is_a_failure_that_names_it() {
        let p = proxy(&["0123abcd.traefik.default"], TRAEFIK_DEFAULT_CERT, |_| response("200 OK", "", "hello"));
        let a = ask(&p, Duration::ZERO);
        assert_eq!(a.result, Outcome::Fail, "{}", a.detail);
        assert!(a.detail.contains(&format!("the proxy's certificate is not valid for {DOMAIN}")), "{}", a.detail);
        assert!(a.detail.contains("TRAEFIK DEFAULT CERT"), "{}", a.detail);
        assert!(
            a.detail.contains("0123abcd.traefik.default"),
            "rustls names what the certificate is for: {}",
            a.detail
        );
    }

    #[test]
    fn the_operators_wildcard_certificate_can_be_the_ca_file() {
        let p = serve(&["*.ccci.localhost"], "*.ccci.localhost", true, |_| response("200 OK", "", "hello"));
        let a = ask(&p, Duration::from_secs(5));
        assert_eq!(a.result, Outcome::Pass, "{}", a.detail);
    }

    #[test]
    fn a_certificate_from_an_untrusted_ca_is_a_failure() {
        let p = proxy(&[DOMAIN], DOMAIN, |_| response("200 OK", "", "hello"));
        let other = proxy(&[DOMAIN], DOMAIN, |_| response("200 OK", "", "hello"));
        let door = FrontDoor::parse(&format!("https://127.0.0.1:{}", p.port), Some(&other.ca), false).unwrap();
        let a = check(&door, &Domain::parse(DOMAIN).unwrap(), &StatusPolicy { also_accept: vec![] }, Duration::ZERO);
        assert_eq!(a.result, Outcome::Fail, "{}", a.detail);
        assert!(a.detail.contains("is not valid for") && a.detail.contains("ca.pem"), "{}", a.detail);
    }

    #[test]
    fn a_redirect_to_another_domain_is_not_followed_and_fails() {
        let p = proxy(&[DOMAIN], DOMAIN, |_| response("302 Found", "location: https://login.example.com/\r\n", ""));
        let a = ask(&p, Duration::ZERO);
        assert_eq!(a.result, Outcome::Fail);
        assert!(a.detail.contains("302 redirects to https://login.example.com/, off the run's domain"), "{}", a.detail);
        assert!(a.detail.contains("not followed"), "{}", a.detail);
    }

    #[test]
    fn a_redirect_within_the_domain_is_followed() {
        let p = proxy(&[DOMAIN], DOMAIN, |path| match path {
            "/" => response("302 Found", "location: /home\r\n", ""),
            "/home" => response("301 Moved Permanently", &format!("location: https://{DOMAIN}/home/\r\n"), ""),
            "/home/" => response("200 OK", "", "home"),
            _ => response("404 Not Found", "", "lost"),
        });
        let a = ask(&p, Duration::from_secs(5));
        assert_eq!(a.result, Outcome::Pass, "{}", a.detail);
        assert!(a.detail.contains("→ 200 (redirected: "), "{}", a.detail);
        assert!(a.detail.contains("/home/"), "{}", a.detail);
        let hosts: Vec<_> = p.seen.try_iter().map(|(_, h)| h).collect();
        assert_eq!(hosts, [DOMAIN, DOMAIN, DOMAIN]);
    }

    #[test]
    fn an_http_to_https_redirect_is_not_serving() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let mut c = c.unwrap();
                let mut buf = [0u8; 2048];
                let _ = c.read(&mut buf);
                let _ = c.write_all(
                    response("301 Moved Permanently", &format!("location: https://{DOMAIN}/\r\n"), "").as_bytes(),
                );
            }
        });
        let door = FrontDoor::parse(&format!("http://127.0.0.1:{port}"), None, true).unwrap();
        let a = check(&door, &Domain::parse(DOMAIN).unwrap(), &StatusPolicy { also_accept: vec![] }, Duration::ZERO);
        assert_eq!(a.result, Outcome::Fail, "{}", a.detail);
        assert!(a.detail.contains(&format!("301 redirects to https://{DOMAIN}/")), "{}", a.detail);
    }

    #[test]
    fn a_front_door_that_cannot_be_reached_is_an_error_of_the_environment() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let door = FrontDoor::parse(&format!("https://127.0.0.1:{port}"), None, false).unwrap();
        let a = check(&door, &Domain::parse(DOMAIN).unwrap(), &StatusPolicy { also_accept: vec![] }, Duration::ZERO);
        assert_eq!(a.result, Outcome::Error, "{}", a.detail);
        assert!(a.detail.contains("cannot be reached"), "{}", a.detail);
    }
}
