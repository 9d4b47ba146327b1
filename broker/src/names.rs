//! Topic and namespace names: `persistent://tenant/namespace/topic`, the short forms
//! clients accept (`topic`, `tenant/ns/topic`), and partition suffixes.

use std::fmt;

use crate::error::{BrokerError, Result};

/// Suffix of the topics that make up a partitioned topic.
pub const PARTITION_SUFFIX: &str = "-partition-";

/// A fully qualified topic name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName {
    /// `true` for `persistent://`.
    pub persistent: bool,
    /// Tenant.
    pub tenant: String,
    /// Namespace (without the tenant).
    pub namespace: String,
    /// Local name, including any `-partition-N` suffix.
    pub local: String,
}

fn invalid(name: &str, reason: &'static str) -> BrokerError {
    BrokerError::InvalidTopicName {
        name: name.to_string(),
        reason,
    }
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | ':' | '%'))
}

impl TopicName {
    /// Parses a topic name the way Pulsar clients write it.
    pub fn parse(name: &str) -> Result<TopicName> {
        let (persistent, rest) = if let Some(r) = name.strip_prefix("persistent://") {
            (true, r)
        } else if let Some(r) = name.strip_prefix("non-persistent://") {
            (false, r)
        } else if name.contains("://") {
            return Err(invalid(name, "unknown domain"));
        } else {
            (true, name)
        };
        let parts: Vec<&str> = rest.splitn(3, '/').collect();
        let (tenant, namespace, local) = match parts.as_slice() {
            [local] if !name.contains("://") => ("public", "default", *local),
            [t, ns, local] => (*t, *ns, *local),
            _ => return Err(invalid(name, "expected tenant/namespace/topic")),
        };
        if !valid_part(tenant) || !valid_part(namespace) {
            return Err(invalid(name, "bad tenant or namespace"));
        }
        if local.is_empty() || local.contains('/') && local.split('/').any(str::is_empty) {
            return Err(invalid(name, "bad local name"));
        }
        Ok(TopicName {
            persistent,
            tenant: tenant.to_string(),
            namespace: namespace.to_string(),
            local: local.to_string(),
        })
    }

    /// `tenant/namespace`.
    pub fn namespace_path(&self) -> String {
        format!("{}/{}", self.tenant, self.namespace)
    }

    /// Partition index if this is `...-partition-N`, else -1 (Pulsar's convention).
    pub fn partition_index(&self) -> i32 {
        match self.local.rfind(PARTITION_SUFFIX) {
            Some(i) => self.local[i + PARTITION_SUFFIX.len()..]
                .parse::<i32>()
                .unwrap_or(-1),
            None => -1,
        }
    }

    /// The partitioned topic this partition belongs to (or itself).
    pub fn base(&self) -> TopicName {
        let mut t = self.clone();
        if self.partition_index() >= 0 {
            if let Some(i) = self.local.rfind(PARTITION_SUFFIX) {
                t.local.truncate(i);
            }
        }
        t
    }

    /// The `-partition-{i}` topic of this topic.
    pub fn partition(&self, i: u32) -> TopicName {
        let mut t = self.clone();
        t.local = format!("{}{PARTITION_SUFFIX}{i}", self.local);
        t
    }

    /// `persistent` or `non-persistent`.
    pub fn domain(&self) -> &'static str {
        if self.persistent {
            "persistent"
        } else {
            "non-persistent"
        }
    }

    /// Managed ledger name: `tenant/ns/persistent/topic`.
    pub fn ledger_name(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.tenant,
            self.namespace,
            self.domain(),
            self.local
        )
    }

    /// Metadata key holding partition metadata of this (base) topic.
    pub fn partitioned_key(&self) -> String {
        format!(
            "/partitioned-topics/{}/{}/{}",
            self.tenant, self.namespace, self.local
        )
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}/{}/{}",
            self.domain(),
            self.tenant,
            self.namespace,
            self.local
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_full_names_parse_to_the_same_topic() {
        let a = TopicName::parse("my-topic").expect("short");
        let b = TopicName::parse("persistent://public/default/my-topic").expect("full");
        let c = TopicName::parse("public/default/my-topic").expect("three parts");
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.to_string(), "persistent://public/default/my-topic");
        assert_eq!(a.partition_index(), -1);
    }

    #[test]
    fn partition_suffix_is_recognised() {
        let t = TopicName::parse("persistent://t/ns/x-partition-3").expect("parse");
        assert_eq!(t.partition_index(), 3);
        assert_eq!(t.base().local, "x");
        assert_eq!(t.base().partition(3), t);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(TopicName::parse("foo://a/b/c").is_err());
        assert!(TopicName::parse("persistent://a/b").is_err());
        assert!(TopicName::parse("persistent:///b/c").is_err());
    }
}
