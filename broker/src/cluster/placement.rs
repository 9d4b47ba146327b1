//! Where an unowned bundle goes: the live broker with the lowest load score.
//!
//! The score adds the bundles a broker owns (counted from the ownership keys, so it is
//! current even between load reports) to the load it last reported: loaded topics, open
//! connections and the publish rate. Ties are broken by rendezvous hashing on the bundle,
//! so concurrent assignments of different bundles spread out while every broker reading
//! the same metadata picks alike.

use std::collections::HashMap;

use magnetar_client::wire::hash::murmur3_32;

use super::LoadReport;

/// Weight of one owned bundle.
pub const BUNDLE_WEIGHT: f64 = 1.0;
/// Weight of one loaded topic.
pub const TOPIC_WEIGHT: f64 = 0.1;
/// Weight of one open client connection.
pub const CONNECTION_WEIGHT: f64 = 0.05;
/// Weight of one message per second published (1 000 msg/s weigh as much as a bundle).
pub const MSG_RATE_WEIGHT: f64 = 0.001;

/// Load score of a broker owning `owned_bundles` that last reported `report`; lower is
/// less loaded.
pub fn load_score(owned_bundles: usize, report: &LoadReport) -> f64 {
    let rate = if report.msg_rate_in.is_finite() {
        report.msg_rate_in.max(0.0)
    } else {
        0.0
    };
    owned_bundles as f64 * BUNDLE_WEIGHT
        + report.topics as f64 * TOPIC_WEIGHT
        + report.connections as f64 * CONNECTION_WEIGHT
        + rate * MSG_RATE_WEIGHT
}

/// Index in `brokers` (`(id, report)`) of the least-loaded broker for `bundle`, given the
/// bundles each broker id owns; `None` when there is no broker.
pub fn least_loaded(
    brokers: &[(String, LoadReport)],
    owned: &HashMap<String, usize>,
    bundle: &str,
) -> Option<usize> {
    brokers
        .iter()
        .enumerate()
        .map(|(i, (id, report))| {
            let score = load_score(owned.get(id).copied().unwrap_or(0), report);
            let tie = murmur3_32(format!("{bundle}|{id}").as_bytes(), 0);
            (i, score, tie)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)))
        .map(|(i, _, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(topics: usize, connections: usize, msg_rate_in: f64) -> LoadReport {
        LoadReport {
            topics,
            connections,
            msg_rate_in,
            ..LoadReport::default()
        }
    }

    fn ids(v: &[(&str, LoadReport)]) -> Vec<(String, LoadReport)> {
        v.iter().map(|(i, r)| (i.to_string(), r.clone())).collect()
    }

    #[test]
    fn busier_broker_loses_even_with_equal_bundles() {
        let brokers = ids(&[("a", report(2, 10, 5_000.0)), ("b", report(2, 10, 10.0))]);
        let owned = HashMap::from([("a".to_string(), 1), ("b".to_string(), 1)]);
        for n in 0..16 {
            let pick = least_loaded(&brokers, &owned, &format!("t/ns/{n}"));
            assert_eq!(pick, Some(1), "the high-rate broker was chosen");
        }
        // Topics and connections count too.
        let brokers = ids(&[("a", report(1, 0, 0.0)), ("b", report(40, 60, 0.0))]);
        assert_eq!(least_loaded(&brokers, &HashMap::new(), "t/ns/x"), Some(0));
    }

    #[test]
    fn owned_bundles_dominate_small_load_differences() {
        let brokers = ids(&[("a", report(0, 0, 0.0)), ("b", report(3, 2, 50.0))]);
        let owned = HashMap::from([("a".to_string(), 3), ("b".to_string(), 0)]);
        assert_eq!(least_loaded(&brokers, &owned, "t/ns/x"), Some(1));
    }

    #[test]
    fn ties_spread_bundles_and_are_deterministic() {
        let brokers = ids(&[("a", report(0, 0, 0.0)), ("b", report(0, 0, 0.0))]);
        let owned = HashMap::new();
        let picks: Vec<_> = (0..32)
            .map(|n| least_loaded(&brokers, &owned, &format!("t/ns/{n}")))
            .collect();
        assert!(picks.contains(&Some(0)) && picks.contains(&Some(1)));
        let again: Vec<_> = (0..32)
            .map(|n| least_loaded(&brokers, &owned, &format!("t/ns/{n}")))
            .collect();
        assert_eq!(picks, again);
        assert_eq!(least_loaded(&[], &owned, "t/ns/x"), None);
        // A bogus reported rate does not poison the score.
        assert_eq!(load_score(1, &report(0, 0, f64::NAN)), BUNDLE_WEIGHT);
    }
}
