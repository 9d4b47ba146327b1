//! Topic names and service URLs.

use crate::error::{Error, Result};

/// Expands a short topic name to `persistent://public/default/...` form.
/// `tenant/ns/topic` gets the `persistent://` domain; full names pass through.
pub fn normalize_topic(topic: &str) -> Result<String> {
    if topic.contains("://") {
        let (domain, rest) = topic.split_once("://").unwrap_or(("", ""));
        if (domain != "persistent" && domain != "non-persistent") || rest.split('/').count() != 3 {
            return Err(Error::InvalidArgument {
                what: "topic name",
                value: topic.to_owned(),
            });
        }
        return Ok(topic.to_owned());
    }
    match topic.split('/').count() {
        1 if !topic.is_empty() => Ok(format!("persistent://public/default/{topic}")),
        3 => Ok(format!("persistent://{topic}")),
        _ => Err(Error::InvalidArgument {
            what: "topic name",
            value: topic.to_owned(),
        }),
    }
}

/// Name of partition `i` of a partitioned topic.
pub fn partition_name(topic: &str, i: u32) -> String {
    format!("{topic}-partition-{i}")
}

/// Parses `pulsar://h1:6650,h2:6650` (or a bare `host:port`) into `host:port` strings.
pub fn parse_service_url(url: &str) -> Result<Vec<String>> {
    let bad = || Error::InvalidArgument {
        what: "service URL",
        value: url.to_owned(),
    };
    let rest = match url.split_once("://") {
        Some(("pulsar", rest)) => rest,
        Some(_) => return Err(bad()),
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let hosts: Vec<String> = rest
        .split(',')
        .map(|h| {
            if h.contains(':') {
                h.to_owned()
            } else {
                format!("{h}:6650")
            }
        })
        .filter(|h| !h.starts_with(':'))
        .collect();
    if hosts.is_empty() {
        return Err(bad());
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_expand() {
        assert_eq!(
            normalize_topic("t").expect("ok"),
            "persistent://public/default/t"
        );
        assert_eq!(normalize_topic("a/b/c").expect("ok"), "persistent://a/b/c");
        assert!(normalize_topic("a/b").is_err());
        assert!(normalize_topic("http://a/b/c").is_err());
    }

    #[test]
    fn service_urls_parse() {
        assert_eq!(
            parse_service_url("pulsar://a:1,b:2").expect("ok"),
            vec!["a:1", "b:2"]
        );
        assert_eq!(
            parse_service_url("pulsar://localhost").expect("ok"),
            vec!["localhost:6650"]
        );
        assert!(parse_service_url("http://x:1").is_err());
    }
}
