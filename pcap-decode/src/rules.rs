//! `--proto PROTO[:PORTS]` and `--decode PROTO[:PORTS]`: which protocols to decode, and on
//! which server ports. No rule at all means every protocol on every port.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Proto, Result};

/// Most ports one rule may name.
pub const MAX_RULE_PORTS: usize = 64;

/// One protocol, on the given server ports (any port when empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProtoRule {
    pub proto: Proto,
    pub ports: Vec<u16>,
}

impl FromStr for ProtoRule {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let (name, ports) = match text.split_once(':') {
            Some((name, ports)) => (name, Some(ports)),
            None => (text, None),
        };
        let proto = Proto::from_name(&name.trim().to_ascii_lowercase())
            .ok_or_else(|| Error::UnknownProto(name.to_string()))?;
        let mut rule = ProtoRule {
            proto,
            ports: Vec::new(),
        };
        if let Some(ports) = ports {
            if ports.trim().is_empty() {
                return Err(Error::NoPorts(text.to_string()));
            }
            for port in ports.split(',') {
                let number = port.trim().parse::<u16>().ok().filter(|p| *p != 0);
                let number = number.ok_or_else(|| Error::BadPort {
                    rule: text.to_string(),
                    port: port.to_string(),
                })?;
                if !rule.ports.contains(&number) {
                    rule.ports.push(number);
                }
                if rule.ports.len() > MAX_RULE_PORTS {
                    return Err(Error::TooManyPorts(text.chars().take(40).collect()));
                }
            }
        }
        Ok(rule)
    }
}

impl ProtoRule {
    /// Whether the rule covers server port `port` (every port when it names none).
    pub fn applies_to(&self, port: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&port)
    }
}

/// Stored and sent as its text (`http:80,8080`).
impl serde::Serialize for ProtoRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ProtoRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ProtoRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proto.name())?;
        for (i, port) in self.ports.iter().enumerate() {
            write!(f, "{}{port}", if i == 0 { ':' } else { ',' })?;
        }
        Ok(())
    }
}

/// The rules of one decoder, asked per flow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    rules: Vec<ProtoRule>,
}

impl Rules {
    /// Rules as given; empty means every protocol on every port.
    pub fn new(rules: Vec<ProtoRule>) -> Self {
        Rules { rules }
    }

    /// Whether a connection of `proto` is decoded when the server's port is `port`. gRPC
    /// runs over HTTP/2, so a `grpc` rule lets HTTP/2 connections be decoded too (and
    /// [`Rules::keeps`] then keeps only their gRPC calls).
    pub fn allows(&self, proto: Proto, port: u16) -> bool {
        self.rules.is_empty()
            || self.rules.iter().any(|r| {
                (r.proto == proto || (proto == Proto::Http2 && r.proto == Proto::Grpc))
                    && r.applies_to(port)
            })
    }

    /// Whether a roundtrip of `proto` (as decoded) is reported when the server's port is
    /// `port`: a gRPC call under an `http2` or a `grpc` rule, the others under their own.
    pub fn keeps(&self, proto: Proto, port: u16) -> bool {
        self.rules.is_empty()
            || self.rules.iter().any(|r| {
                (r.proto == proto || (proto == Proto::Grpc && r.proto == Proto::Http2))
                    && r.applies_to(port)
            })
    }

    /// The protocol a rule names for this port explicitly, if one does: a hint that
    /// outranks recognition by content (e.g. `http2:8080` for a connection seen mid-stream).
    /// A `grpc` rule names the HTTP/2 connections that carry it.
    pub fn port_hint(&self, port: u16) -> Option<Proto> {
        self.rules
            .iter()
            .find(|r| r.ports.contains(&port))
            .map(|r| match r.proto {
                Proto::Grpc => Proto::Http2,
                p => p,
            })
    }

    /// The rules as given.
    pub fn as_slice(&self) -> &[ProtoRule] {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_rules() {
        let rule: ProtoRule = "http:80,8080".parse().unwrap();
        assert_eq!(
            rule,
            ProtoRule {
                proto: Proto::Http,
                ports: vec![80, 8080]
            }
        );
        assert_eq!(rule.to_string(), "http:80,8080");
        assert_eq!("dns".parse::<ProtoRule>().unwrap().to_string(), "dns");
        assert_eq!("tls:443".parse::<ProtoRule>().unwrap().proto, Proto::Tls);
    }

    #[test]
    fn refuses_bad_rules_with_what_to_do() {
        let err = "smtp:25".parse::<ProtoRule>().unwrap_err();
        assert!(
            err.to_string()
                .contains("use http, dns, http2, grpc or tls"),
            "{err}"
        );
        let err = "http:80,x".parse::<ProtoRule>().unwrap_err();
        assert!(err.to_string().contains("\"x\""), "{err}");
        assert!("http:0".parse::<ProtoRule>().is_err());
        assert!("http:".parse::<ProtoRule>().is_err());
    }

    #[test]
    fn no_rules_allow_everything() {
        assert!(Rules::default().allows(Proto::Dns, 5353));
        let rules = Rules::new(vec!["http:80".parse().unwrap()]);
        assert!(rules.allows(Proto::Http, 80));
        assert!(!rules.allows(Proto::Http, 81));
        assert!(!rules.allows(Proto::Dns, 53));
        assert_eq!(rules.port_hint(80), Some(Proto::Http));
    }

    #[test]
    fn grpc_rules_decode_http2_connections_and_keep_only_their_grpc_calls() {
        let rules = Rules::new(vec!["grpc:50051".parse().unwrap()]);
        assert!(rules.allows(Proto::Http2, 50051));
        assert!(!rules.allows(Proto::Http2, 8080));
        assert!(rules.keeps(Proto::Grpc, 50051));
        assert!(!rules.keeps(Proto::Http2, 50051));
        assert_eq!(rules.port_hint(50051), Some(Proto::Http2));
        let rules = Rules::new(vec!["http2".parse().unwrap()]);
        assert!(rules.keeps(Proto::Grpc, 443) && rules.keeps(Proto::Http2, 443));
        assert!(!rules.allows(Proto::Http, 80));
    }
}
