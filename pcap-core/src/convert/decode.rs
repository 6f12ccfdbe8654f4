//! Conversions of the decoding part of the API: rules, `Decode` requests and roundtrips.

use std::net::SocketAddr;

use pcap_decode as dec;
use pcap_decode::ProtoRule;

use super::single;
use crate::api::v1 as api;
use crate::domain::{DecodeSpec, Selector};
use crate::limits;
use crate::{Error, Result};

// === Rules ===

impl TryFrom<api::DecodeRule> for ProtoRule {
    type Error = Error;
    fn try_from(r: api::DecodeRule) -> Result<Self> {
        let proto = dec::Proto::from_name(&r.proto).ok_or_else(|| {
            Error::BadRequest(dec::Error::UnknownProto(r.proto.clone()).to_string())
        })?;
        if r.ports.len() > dec::rules::MAX_RULE_PORTS {
            return Err(Error::BadRequest(format!(
                "the {} rule names {} ports: at most {} per rule",
                r.proto,
                r.ports.len(),
                dec::rules::MAX_RULE_PORTS
            )));
        }
        let mut ports = Vec::with_capacity(r.ports.len());
        for port in r.ports {
            let port = u16::try_from(port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    Error::BadRequest(format!(
                        "port {port} in the {} rule: ports are 1 to 65535",
                        r.proto
                    ))
                })?;
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        Ok(ProtoRule { proto, ports })
    }
}

impl From<&ProtoRule> for api::DecodeRule {
    fn from(r: &ProtoRule) -> Self {
        api::DecodeRule {
            proto: r.proto.name().to_owned(),
            ports: r.ports.iter().map(|p| u32::from(*p)).collect(),
        }
    }
}

/// Rules of a request (`flag` names them for messages: `--decode`, `--proto`).
pub(crate) fn rules(flag: &str, rules: Vec<api::DecodeRule>) -> Result<Vec<ProtoRule>> {
    limits::check_decode_rules(flag, rules.len())?;
    rules.into_iter().map(ProtoRule::try_from).collect()
}

// === Decode ===

impl TryFrom<api::DecodeRequest> for DecodeSpec {
    type Error = Error;
    fn try_from(r: api::DecodeRequest) -> Result<Self> {
        limits::check_time_range(r.since_unix_ns, r.until_unix_ns)?;
        limits::check_filter("--filter", &r.filter)?;
        Ok(DecodeSpec {
            selector: single(Selector::try_from(r.selector)?, "decode")?,
            live: r.live,
            since_unix_ns: r.since_unix_ns,
            until_unix_ns: r.until_unix_ns,
            filter: r.filter.trim().to_owned(),
            protocols: rules("--proto", r.protocols)?,
        })
    }
}

impl From<&DecodeSpec> for api::DecodeRequest {
    fn from(s: &DecodeSpec) -> Self {
        api::DecodeRequest {
            selector: Some((&s.selector).into()),
            live: s.live,
            since_unix_ns: s.since_unix_ns,
            until_unix_ns: s.until_unix_ns,
            filter: s.filter.clone(),
            protocols: s.protocols.iter().map(Into::into).collect(),
        }
    }
}

// === Roundtrips ===

fn headers(h: &[dec::Header]) -> Vec<api::Header> {
    h.iter()
        .map(|h| api::Header {
            name: h.name.clone(),
            value: h.value.clone(),
        })
        .collect()
}

fn headers_back(h: Vec<api::Header>) -> Vec<dec::Header> {
    h.into_iter()
        .map(|h| dec::Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}

fn status_back(status: Option<u32>) -> Result<Option<u16>> {
    status
        .map(|s| {
            u16::try_from(s).map_err(|_| Error::BadRequest(format!("status {s} out of range")))
        })
        .transpose()
}

impl From<&dec::Roundtrip> for api::Roundtrip {
    fn from(r: &dec::Roundtrip) -> Self {
        api::Roundtrip {
            timestamp_ns: r.ts_ns,
            duration_ns: r.duration_ns,
            proto: r.proto.name().to_owned(),
            client: r.client.to_string(),
            server: r.server.to_string(),
            flow: r.flow,
            first_packet: r.packets[0],
            last_packet: r.packets[1],
            complete: r.complete,
            notes: r.notes.clone(),
            http: r.http.as_ref().map(|h| api::HttpExchange {
                method: h.method.clone(),
                target: h.target.clone(),
                version: h.version.clone(),
                host: h.host.clone(),
                request_headers: headers(&h.request_headers),
                status: h.status.map(u32::from),
                reason: h.reason.clone(),
                response_headers: headers(&h.response_headers),
                request_body_bytes: h.request_body_bytes,
                response_body_bytes: h.response_body_bytes,
            }),
            dns: r.dns.as_ref().map(|d| api::DnsExchange {
                id: d.id.into(),
                transport: d.transport.clone(),
                name: d.name.clone(),
                r#type: d.qtype.clone(),
                class: d.class.clone(),
                rcode: d.rcode.clone(),
                flags: d.flags.clone(),
                answers: d
                    .answers
                    .iter()
                    .map(|a| api::DnsAnswer {
                        name: a.name.clone(),
                        r#type: a.rtype.clone(),
                        ttl: a.ttl,
                        data: a.data.clone(),
                    })
                    .collect(),
            }),
            http2: r.http2.as_ref().map(|h| api::Http2Exchange {
                stream: h.stream,
                method: h.method.clone(),
                scheme: h.scheme.clone(),
                authority: h.authority.clone(),
                path: h.path.clone(),
                status: h.status.map(u32::from),
                request_headers: headers(&h.request_headers),
                response_headers: headers(&h.response_headers),
                request_body_bytes: h.request_body_bytes,
                response_body_bytes: h.response_body_bytes,
                reset: h.reset.clone(),
            }),
            tls: r.tls.as_ref().map(|t| api::TlsHello {
                sni: t.sni.clone(),
                alpn: t.alpn.clone(),
                version: t.version.clone(),
            }),
            grpc: r.grpc.as_ref().map(|g| api::GrpcCall {
                service: g.service.clone(),
                method: g.method.clone(),
                grpc_status: g.grpc_status,
                grpc_message: g.grpc_message.clone(),
                request_messages: g.request_messages,
                response_messages: g.response_messages,
                request_bytes: g.request_bytes,
                response_bytes: g.response_bytes,
            }),
        }
    }
}

impl TryFrom<api::Roundtrip> for dec::Roundtrip {
    type Error = Error;
    fn try_from(r: api::Roundtrip) -> Result<Self> {
        let addr = |what: &str, a: &str| {
            a.parse::<SocketAddr>().map_err(|_| {
                Error::BadRequest(format!("roundtrip {what} {a:?} is not an ip:port address"))
            })
        };
        let proto = dec::Proto::from_name(&r.proto).ok_or_else(|| {
            Error::BadRequest(format!("unknown roundtrip protocol {:?}", r.proto))
        })?;
        Ok(dec::Roundtrip {
            ts_ns: r.timestamp_ns,
            duration_ns: r.duration_ns,
            proto,
            client: addr("client", &r.client)?,
            server: addr("server", &r.server)?,
            flow: r.flow,
            packets: [r.first_packet, r.last_packet],
            complete: r.complete,
            notes: r.notes,
            http: r
                .http
                .map(|h| -> Result<_> {
                    Ok(dec::HttpExchange {
                        method: h.method,
                        target: h.target,
                        version: h.version,
                        host: h.host,
                        request_headers: headers_back(h.request_headers),
                        status: status_back(h.status)?,
                        reason: h.reason,
                        response_headers: headers_back(h.response_headers),
                        request_body_bytes: h.request_body_bytes,
                        response_body_bytes: h.response_body_bytes,
                    })
                })
                .transpose()?,
            dns: r
                .dns
                .map(|d| -> Result<_> {
                    Ok(dec::DnsExchange {
                        id: u16::try_from(d.id).map_err(|_| {
                            Error::BadRequest(format!("DNS id {} out of range", d.id))
                        })?,
                        transport: d.transport,
                        name: d.name,
                        qtype: d.r#type,
                        class: d.class,
                        rcode: d.rcode,
                        flags: d.flags,
                        answers: d
                            .answers
                            .into_iter()
                            .map(|a| dec::DnsAnswer {
                                name: a.name,
                                rtype: a.r#type,
                                ttl: a.ttl,
                                data: a.data,
                            })
                            .collect(),
                    })
                })
                .transpose()?,
            http2: r
                .http2
                .map(|h| -> Result<_> {
                    Ok(dec::Http2Exchange {
                        stream: h.stream,
                        method: h.method,
                        scheme: h.scheme,
                        authority: h.authority,
                        path: h.path,
                        status: status_back(h.status)?,
                        request_headers: headers_back(h.request_headers),
                        response_headers: headers_back(h.response_headers),
                        request_body_bytes: h.request_body_bytes,
                        response_body_bytes: h.response_body_bytes,
                        reset: h.reset,
                    })
                })
                .transpose()?,
            grpc: r.grpc.map(|g| dec::GrpcCall {
                service: g.service,
                method: g.method,
                grpc_status: g.grpc_status,
                grpc_message: g.grpc_message,
                request_messages: g.request_messages,
                response_messages: g.response_messages,
                request_bytes: g.request_bytes,
                response_bytes: g.response_bytes,
            }),
            // The API has no TLS message yet: its hellos travel in the notes.
            tls: r.tls.map(|t| dec::TlsHello {
                sni: t.sni,
                alpn: t.alpn,
                version: t.version,
            }),
        })
    }
}
