//! The classic Prometheus text format (version 0.0.4), for scrapers that do not ask for
//! OpenMetrics (curl, older Prometheus, promtool, most client libraries' parsers). It is
//! made from the OpenMetrics text by renaming what the two formats name differently:
//! a counter's family is named with its `_total` suffix, an info metric becomes a gauge
//! named `..._info`, `unknown` becomes `untyped`; `# UNIT` and `# EOF` lines go.

use std::collections::HashMap;

/// The media type of the classic text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites OpenMetrics text into the classic text format.
pub fn from_openmetrics(text: &str) -> String {
    // Family name -> (name in the classic format, its type there).
    let mut families: HashMap<&str, (String, &str)> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                let renamed = match kind {
                    "counter" => (format!("{name}_total"), "counter"),
                    "info" => (format!("{name}_info"), "gauge"),
                    "unknown" => (name.to_owned(), "untyped"),
                    other => (name.to_owned(), other),
                };
                families.insert(name, renamed);
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let rewritten = if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = families.get(name).map_or(name, |(n, _)| n.as_str());
            format!("# HELP {name} {help}")
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_once(' ').map_or(rest, |(n, _)| n);
            match families.get(name) {
                Some((n, kind)) => format!("# TYPE {n} {kind}"),
                None => line.to_owned(),
            }
        } else {
            line.to_owned()
        };
        out.push_str(&rewritten);
        out.push('\n');
    }
    out
}

/// Whether a request's Accept header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_renamed_as_the_classic_format_names_them() {
        let om = "# HELP a_packets Packets.\n# TYPE a_packets counter\n\
                  a_packets_total{id=\"1\"} 3\n\
                  # HELP a_bytes Bytes.\n# TYPE a_bytes gauge\n# UNIT a_bytes bytes\n\
                  a_bytes{id=\"1\"} 7\n\
                  # HELP a_build Version.\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n\
                  # EOF\n";
        assert_eq!(
            from_openmetrics(om),
            "# HELP a_packets_total Packets.\n# TYPE a_packets_total counter\n\
             a_packets_total{id=\"1\"} 3\n\
             # HELP a_bytes Bytes.\n# TYPE a_bytes gauge\na_bytes{id=\"1\"} 7\n\
             # HELP a_build_info Version.\n# TYPE a_build_info gauge\na_build_info{version=\"1\"} 1\n"
        );
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(None));
    }
}
