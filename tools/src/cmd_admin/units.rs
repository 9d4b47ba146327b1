//! pulsar-admin's argument forms: relative times (`30s`, `10m`, `2h`, `3d`, `1w`), sizes
//! (`4096`, `10M`, `2G`), names (`tenant/ns`, `persistent://t/ns/topic`).

use anyhow::{anyhow, bail};
use magnetar_broker::names::TopicName;

/// Seconds in a relative time; no suffix means seconds, `-1` stays -1 (infinite).
pub fn parse_time_secs(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86_400),
        Some('w') => (&s[..s.len() - 1], 7 * 86_400),
        _ => (s, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow!("invalid time {s:?} (e.g. 30s, 10m, 2h, 3d, 1w)"))?;
    if n < 0 {
        bail!("invalid time {s:?}: must not be negative");
    }
    n.checked_mul(mult)
        .ok_or_else(|| anyhow!("time {s:?} is too large"))
}

/// Bytes in a size; no suffix means bytes, `-1` stays -1 (infinite).
pub fn parse_size_bytes(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&s[..s.len() - 1], 1i64 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        Some('t') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow!("invalid size {s:?} (e.g. 4096, 10M, 2G)"))?;
    if n < 0 {
        bail!("invalid size {s:?}: must not be negative");
    }
    n.checked_mul(mult)
        .ok_or_else(|| anyhow!("size {s:?} is too large"))
}

/// `tenant/namespace` as a URL path part.
pub fn namespace_path(ns: &str) -> anyhow::Result<String> {
    match ns.split('/').collect::<Vec<_>>().as_slice() {
        [t, n] if !t.is_empty() && !n.is_empty() => Ok(format!("{t}/{n}")),
        _ => bail!("invalid namespace {ns:?}: expected tenant/namespace"),
    }
}

/// `persistent/{t}/{ns}/{topic}` for a topic name in any form clients accept.
pub fn topic_path(topic: &str) -> anyhow::Result<String> {
    let t = TopicName::parse(topic).map_err(|e| anyhow!("{e}"))?;
    if !t.persistent {
        bail!("only persistent topics are supported: {topic}");
    }
    Ok(format!(
        "persistent/{}/{}/{}",
        t.tenant, t.namespace, t.local
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_parse_like_pulsar_admin() {
        assert_eq!(parse_time_secs("90").expect("plain"), 90);
        assert_eq!(parse_time_secs("10m").expect("m"), 600);
        assert_eq!(parse_time_secs("2h").expect("h"), 7200);
        assert_eq!(parse_time_secs("-1").expect("inf"), -1);
        assert!(parse_time_secs("soon").is_err());
        assert_eq!(parse_size_bytes("10M").expect("M"), 10 << 20);
        assert_eq!(parse_size_bytes("4096").expect("bytes"), 4096);
        assert!(parse_size_bytes("-5").is_err());
        assert_eq!(
            topic_path("x").expect("short"),
            "persistent/public/default/x"
        );
        assert!(namespace_path("justone").is_err());
    }
}
