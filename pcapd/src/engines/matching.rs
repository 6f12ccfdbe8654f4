//! Which container a name, id or id prefix means, by `docker inspect`'s rules: a full id
//! first, then a name, then the start of an id, which must be unique.

use super::Container;

/// The containers a query picks out of one engine's list.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Match<T> {
    /// Exactly one.
    One(T),
    /// Several, equally good: the query is ambiguous.
    Several(Vec<T>),
    /// None.
    None,
}

/// Picks the container `query` means among `candidates` (one engine's containers).
/// An exact id beats a name, which beats an id prefix; only a tie at the best level is
/// ambiguous, so a container named like the start of another's id is still found by name.
pub(crate) fn select(query: &str, candidates: &[Container]) -> Match<Container> {
    let levels: [&dyn Fn(&Container) -> bool; 3] =
        [&|c| c.id == query, &|c| c.name == query, &|c| {
            c.id.starts_with(query)
        }];
    for matches in levels {
        let mut hits: Vec<Container> = candidates.iter().filter(|c| matches(c)).cloned().collect();
        match hits.len() {
            0 => continue,
            1 => return Match::One(hits.remove(0)),
            _ => return Match::Several(hits),
        }
    }
    Match::None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::Runtime;

    fn c(id: &str, name: &str) -> Container {
        Container {
            runtime: Runtime::Docker,
            id: id.into(),
            name: name.into(),
            namespace: None,
            pid: None,
            running: false,
        }
    }

    fn one(m: Match<Container>) -> String {
        match m {
            Match::One(c) => c.name,
            other => panic!("expected one match, got {other:?}"),
        }
    }

    #[test]
    fn name_full_id_and_unique_prefix_are_found() {
        let all = [c("abc123", "web"), c("abd456", "db"), c("f00", "cache")];
        assert_eq!(one(select("web", &all)), "web");
        assert_eq!(one(select("abd456", &all)), "db");
        assert_eq!(one(select("abc", &all)), "web");
        assert_eq!(one(select("f", &all)), "cache");
    }

    #[test]
    fn a_prefix_shared_by_several_ids_is_ambiguous() {
        let all = [c("abc123", "web"), c("abd456", "db"), c("f00", "cache")];
        match select("ab", &all) {
            Match::Several(hits) => {
                let names: Vec<_> = hits.iter().map(|c| c.name.as_str()).collect();
                assert_eq!(names, ["web", "db"]);
            }
            other => panic!("expected ambiguity, got {other:?}"),
        }
    }

    #[test]
    fn an_exact_id_beats_a_name_and_a_name_beats_a_prefix() {
        // A container named "abc" and another whose id starts with "abc": the name wins.
        let all = [c("abc123", "web"), c("999", "abc")];
        assert_eq!(one(select("abc", &all)), "abc");
        // A container whose name is another's full id: the id wins, as in docker inspect.
        let all = [c("abc123", "web"), c("999", "abc123")];
        assert_eq!(one(select("abc123", &all)), "web");
    }

    #[test]
    fn nothing_matches_an_unknown_name_or_a_longer_id() {
        let all = [c("abc123", "web")];
        assert_eq!(select("nginx", &all), Match::None);
        assert_eq!(select("abc1234", &all), Match::None);
        assert_eq!(select("web", &[]), Match::None);
    }

    #[test]
    fn the_same_id_in_two_containerd_namespaces_is_ambiguous() {
        let mut a = c("web", "web");
        a.namespace = Some("default".into());
        let mut b = a.clone();
        b.namespace = Some("k8s.io".into());
        assert!(matches!(select("web", &[a, b]), Match::Several(h) if h.len() == 2));
    }
}
