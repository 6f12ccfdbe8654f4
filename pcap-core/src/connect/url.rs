//! Where a daemon listens, as users write it: `https://HOST[:PORT]` for pcapd's TLS
//! listener or `unix:///path` for a socket. pcapd has no plaintext TCP listener, so no
//! other scheme is accepted.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::str::FromStr;

use rustls::pki_types::ServerName;

use crate::{Error, Result, DEFAULT_TLS_PORT};

/// A parsed daemon address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndpointUrl {
    /// A UNIX socket, by absolute path.
    Unix(PathBuf),
    /// pcapd's mutual-TLS listener. `host` is a DNS name or an IP address, without the
    /// brackets an IPv6 address has in the URL.
    Https { host: String, port: u16 },
}

impl EndpointUrl {
    /// Parses `https://HOST[:PORT][/]` (port 2020 by default; IPv6 in brackets) or
    /// `unix:///absolute/path`.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(Error::Invalid(format!(
                "{url:?} is not a URL: {}",
                Self::FORMS
            )));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "https" => parse_https(url, rest),
            "unix" => parse_unix(url, rest),
            "http" | "h2c" | "grpc" | "tcp" => Err(Error::Invalid(format!(
                "{url:?}: pcapd has no plaintext listener; {}",
                Self::FORMS
            ))),
            other => Err(Error::Invalid(format!(
                "{url:?}: unsupported URL scheme {other:?}; {}",
                Self::FORMS
            ))),
        }
    }

    /// The forms accepted, for error messages.
    const FORMS: &'static str = "use https://HOST[:PORT] for pcapd's TLS listener (port 2020 \
                                 by default) or unix:///path/to/pcapd.sock for a local socket";

    /// `HOST:PORT` for messages, IPv6 addresses in brackets; the path for a socket.
    pub fn authority(&self) -> String {
        match self {
            EndpointUrl::Unix(path) => path.display().to_string(),
            EndpointUrl::Https { host, port } => format!("{}:{port}", bracketed(host)),
        }
    }
}

impl FromStr for EndpointUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        EndpointUrl::parse(s)
    }
}

impl fmt::Display for EndpointUrl {
    /// The canonical form, with the port always written: `https://lab.example:2020`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointUrl::Unix(path) => write!(f, "unix://{}", path.display()),
            EndpointUrl::Https { .. } => write!(f, "https://{}", self.authority()),
        }
    }
}

/// `host` as it goes in a URL: an IPv6 address in brackets.
pub(crate) fn bracketed(host: &str) -> String {
    match host.parse::<Ipv6Addr>() {
        Ok(_) => format!("[{host}]"),
        Err(_) => host.to_owned(),
    }
}

fn parse_https(url: &str, rest: &str) -> Result<EndpointUrl> {
    let bad = |why: &str| Error::Invalid(format!("{url:?}: {why}; expected https://HOST[:PORT]"));
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(bad("a pcapd URL has no path, query or fragment"));
    }
    if authority.contains('@') {
        return Err(bad(
            "a pcapd URL has no user name (the client certificate says who you are)",
        ));
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| bad("unclosed '[' around an IPv6 address"))?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(bad("only an IPv6 address goes in brackets"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(bad("expected ':PORT' after the IPv6 address")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(bad("write an IPv6 address in brackets: https://[::1]:2020"))
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    let port = match port {
        None => DEFAULT_TLS_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad(&format!("{p:?} is not a port number (1-65535)"))),
        },
    };
    let host = host.to_ascii_lowercase();
    if ServerName::try_from(host.as_str()).is_err() {
        return Err(bad(&format!(
            "{host:?} is not a valid host name or IP address"
        )));
    }
    Ok(EndpointUrl::Https { host, port })
}

fn parse_unix(url: &str, rest: &str) -> Result<EndpointUrl> {
    if !rest.starts_with('/') || rest.len() < 2 {
        return Err(Error::Invalid(format!(
            "{url:?}: a socket URL holds an absolute path: unix:///run/pcapd/pcapd.sock"
        )));
    }
    Ok(EndpointUrl::Unix(PathBuf::from(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn https(host: &str, port: u16) -> EndpointUrl {
        EndpointUrl::Https {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn https_with_and_without_port() {
        assert_eq!(
            EndpointUrl::parse("https://lab.example").unwrap(),
            https("lab.example", 2020)
        );
        assert_eq!(
            EndpointUrl::parse("https://lab.example:8443/").unwrap(),
            https("lab.example", 8443)
        );
        assert_eq!(
            EndpointUrl::parse("HTTPS://Lab.Example:1").unwrap(),
            https("lab.example", 1)
        );
        assert_eq!(
            EndpointUrl::parse("https://10.0.0.7").unwrap(),
            https("10.0.0.7", 2020)
        );
    }

    #[test]
    fn ipv6_in_brackets() {
        assert_eq!(
            EndpointUrl::parse("https://[::1]:2020").unwrap(),
            https("::1", 2020)
        );
        assert_eq!(
            EndpointUrl::parse("https://[fe80::1]").unwrap(),
            https("fe80::1", 2020)
        );
        let u = EndpointUrl::parse("https://[::1]:9000").unwrap();
        assert_eq!(u.to_string(), "https://[::1]:9000");
        assert_eq!(u.authority(), "[::1]:9000");
        assert!(EndpointUrl::parse("https://::1:2020").is_err());
        assert!(EndpointUrl::parse("https://[::1").is_err());
        assert!(EndpointUrl::parse("https://[lab]:2020").is_err());
    }

    #[test]
    fn unix_socket_paths() {
        assert_eq!(
            EndpointUrl::parse("unix:///run/pcapd/pcapd.sock").unwrap(),
            EndpointUrl::Unix("/run/pcapd/pcapd.sock".into())
        );
        assert_eq!(
            EndpointUrl::parse("unix:///tmp/p.sock")
                .unwrap()
                .to_string(),
            "unix:///tmp/p.sock"
        );
        assert!(EndpointUrl::parse("unix://relative.sock").is_err());
        assert!(EndpointUrl::parse("unix://").is_err());
    }

    #[test]
    fn canonical_form_writes_the_port() {
        let u = EndpointUrl::parse("https://lab.example").unwrap();
        assert_eq!(u.to_string(), "https://lab.example:2020");
        assert_eq!(EndpointUrl::parse(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn other_schemes_and_shapes_are_refused() {
        let e = EndpointUrl::parse("http://lab.example:2020")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no plaintext listener"), "{e}");
        assert!(e.contains("https://HOST[:PORT]"), "{e}");
        let e = EndpointUrl::parse("ftp://lab").unwrap_err().to_string();
        assert!(e.contains("unsupported URL scheme \"ftp\""), "{e}");
        let e = EndpointUrl::parse("lab.example:2020")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a URL"), "{e}");
        for bad in [
            "https://",
            "https://:2020",
            "https://lab:0",
            "https://lab:70000",
            "https://lab:http",
            "https://lab/pcap",
            "https://me@lab",
            "https://lab?x=1",
            "https://bad host",
        ] {
            assert!(EndpointUrl::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
