//! The registry's commands: init, start, stop, delete. Each resolves its selector, checks
//! that the caller may act on every capture it names, then hands the work to the
//! captures' owners and waits for their answers; several captures are worked on at once.

use pcap_core::domain::{CaptureInfo, CaptureSpec, Counters, State, StopConditions};

use super::access::{denied, Caller};
use super::actor::{blocking, CaptureRef, Command};
use super::view::{label, source};
use super::{Registry, Selector};
use crate::capture::device;
use crate::{Error, Result};

impl Registry {
    /// Defines a capture, or adds the aliases to the capture that has the same target and
    /// filter already (refused when it asks for other decode rules than that capture's).
    /// Returns the capture and whether it was created.
    pub async fn init(&self, spec: CaptureSpec, caller: &Caller) -> Result<(CaptureInfo, bool)> {
        self.check_filter_len(&spec.filter)?;
        let config = self.settings();
        let (target, filter, snaplen) = (spec.target.clone(), spec.filter.clone(), spec.snaplen);
        let (link_type, applied_filter, found) = blocking(move || {
            let applied = config.applied_filter(&filter);
            let checks = || {
                device::check_exists(&target)?;
                // The user's filter first, so that a mistake in it is reported as theirs.
                device::probe(&target, &filter, snaplen)?;
                device::probe(&target, &applied, snaplen)
            };
            let (link_type, found) = match &target.netns {
                None => (checks()?, crate::netns::Found::default()),
                Some(ns) => crate::netns::run_in(ns, checks)?,
            };
            Ok((link_type, applied, found))
        })
        .await?;
        let mut spec = spec;
        // A container is recorded with the engine found running it, and followed by name;
        // only a pid or inode target is pinned to its process.
        let anchor = match &mut spec.target.netns {
            Some(pcap_core::domain::Netns::Container { runtime, .. }) => {
                if runtime.is_none() {
                    *runtime = found.runtime;
                }
                None
            }
            _ => found.anchor,
        };
        // An inode is only ever this namespace's while its cookie is the same.
        let cookie = match &spec.target.netns {
            Some(pcap_core::domain::Netns::Inode(_)) => found.cookie,
            _ => None,
        };
        // A capture with this target and filter being deleted as the aliases are added to
        // it is gone by the next try, which defines a new one.
        let mut tries = 0;
        loop {
            tries += 1;
            match self
                .define(&spec, caller, link_type, &applied_filter, (anchor, cookie))
                .await
            {
                Err(Error::NotFound(_)) if tries < 3 => continue,
                other => return other,
            }
        }
    }

    /// `init` once its probes are done: under the registry's lock, the alias checks and
    /// either a new capture or the aliases added to the same one; then it is saved.
    async fn define(
        &self,
        spec: &CaptureSpec,
        caller: &Caller,
        link_type: u32,
        applied_filter: &str,
        (anchor, netns_cookie): (Option<pcap_core::domain::ProcessRef>, Option<u64>),
    ) -> Result<(CaptureInfo, bool)> {
        let spec = spec.clone();
        let (capture, created) = {
            let mut captures = self.lock();
            if captures.shutting_down {
                return Err(Error::Unavailable("pcapd is shutting down".into()));
            }
            // Deleted captures whose delete call went away before removing them.
            captures.by_id.retain(|_, c| !c.is_gone());
            for alias in &spec.aliases {
                let taken = captures.live().find_map(|c| {
                    c.view.with(|i| {
                        (i.aliases.contains(alias)
                            && (i.imported_from.is_some()
                                || i.target != spec.target
                                || i.filter != spec.filter))
                            .then(|| (label(i), source(i)))
                    })
                });
                if let Some((other, source)) = taken {
                    return Err(Error::AlreadyExists(format!(
                        "alias \"{alias}\" is already used by {other} {source}; choose another \
                         alias, or remove it with `pcap delete {alias}`"
                    )));
                }
            }
            let same = captures
                .live()
                .find(|c| {
                    c.view.with(|i| {
                        i.imported_from.is_none()
                            && i.target == spec.target
                            && i.filter == spec.filter
                    })
                })
                .cloned();
            match same {
                Some(capture) => {
                    if let Some(refusal) = capture.view.with(|i| other_decode_rules(i, &spec)) {
                        return Err(refusal);
                    }
                    capture.view.update(|i| {
                        for alias in &spec.aliases {
                            if !i.aliases.contains(alias) {
                                i.aliases.push(alias.clone());
                            }
                        }
                    });
                    (capture, false)
                }
                None => {
                    let max = self.settings().max_captures;
                    if captures.live().count() >= max {
                        return Err(Error::Unavailable(format!(
                            "pcapd holds {max} captures already (max_captures): delete some \
                             with `pcap delete`"
                        )));
                    }
                    let id = captures.next_id;
                    captures.next_id += 1;
                    let info = CaptureInfo {
                        id,
                        aliases: spec.aliases,
                        applied_filter: applied_filter.to_owned(),
                        target: spec.target,
                        filter: spec.filter,
                        snaplen: spec.snaplen,
                        promisc: spec.promisc,
                        stop: spec.stop,
                        retention: spec.retention,
                        owner: caller.name.clone(),
                        state: State::Pending,
                        reason: String::new(),
                        counters: Counters::default(),
                        link_type,
                        created_unix_ns: pcap_core::parse::unix_ns(std::time::SystemTime::now()),
                        started_unix_ns: 0,
                        anchor,
                        netns_cookie,
                        interface_names: Default::default(),
                        decode: spec.decode,
                        imported_from: None,
                    };
                    let capture = CaptureRef::spawn(info, self.shared.clone());
                    captures.by_id.insert(id, capture.clone());
                    (capture, true)
                }
            }
        };
        let saved = if created {
            capture.ask(Command::Create).await.and_then(|r| r)
        } else {
            capture.ask(Command::Persist).await.and_then(|r| r)
        };
        let info = capture.view.snapshot();
        if let Err(e) = saved {
            if created {
                self.lock().by_id.remove(&info.id);
            }
            return Err(e);
        }
        if created {
            tracing::info!(capture.id = info.id, owner = %caller.name, target = %info.target, filter = %info.filter, "capture defined");
        } else {
            tracing::info!(capture.id = info.id, caller = %caller.name, aliases = ?info.aliases, "aliases added");
        }
        Ok((info, created))
    }

    /// Starts (or resumes) the selected captures; with `stop`, they take these stop
    /// conditions from now on.
    pub async fn start(
        &self,
        sel: &Selector,
        caller: &Caller,
        stop: Option<StopConditions>,
    ) -> Result<Vec<CaptureInfo>> {
        if self.lock().shutting_down {
            return Err(Error::Unavailable("pcapd is shutting down".into()));
        }
        let mut captures = self.allowed(sel, caller, "start")?;
        // `--all` starts what can be started; an imported capture named alone is refused
        // by its owner.
        if matches!(sel, Selector::All) {
            captures.retain(|c| c.view.with(|i| i.imported_from.is_none()));
        }
        let infos = each(&captures, |reply| Command::Start { stop, reply }).await?;
        for info in &infos {
            tracing::info!(capture.id = info.id, caller = %caller.name, state = %info.state, "start");
        }
        Ok(infos)
    }

    /// Pauses the selected captures, waiting until their segments are closed.
    pub async fn stop(&self, sel: &Selector, caller: &Caller) -> Result<Vec<CaptureInfo>> {
        let captures = self.allowed(sel, caller, "stop")?;
        let infos = each(&captures, Command::Stop).await?;
        for info in &infos {
            tracing::info!(capture.id = info.id, caller = %caller.name, "stopped");
        }
        Ok(infos)
    }

    /// Removes the selected captures and their spool.
    pub async fn delete(&self, sel: &Selector, caller: &Caller) -> Result<Vec<CaptureInfo>> {
        let captures = self.allowed(sel, caller, "delete")?;
        let infos = each(&captures, Command::Delete).await?;
        let mut registered = self.lock();
        for info in &infos {
            registered.by_id.remove(&info.id);
            tracing::info!(capture.id = info.id, caller = %caller.name, "deleted with its spool");
        }
        Ok(infos)
    }

    /// The captures `sel` names, if `caller` may `verb` every one of them; otherwise a
    /// refusal naming those it may not, and nothing is done.
    fn allowed(&self, sel: &Selector, caller: &Caller, verb: &str) -> Result<Vec<CaptureRef>> {
        let captures = self.resolve(sel)?;
        let refused: Vec<(String, String)> = captures
            .iter()
            .filter_map(|c| {
                c.view
                    .with(|i| (!caller.may_manage(i)).then(|| (label(i), i.owner.clone())))
            })
            .collect();
        if !refused.is_empty() {
            tracing::warn!(caller = %caller.name, verb, refused = refused.len(), "refused: not the owner");
            return Err(denied(verb, &refused, &self.settings()));
        }
        Ok(captures)
    }
}

/// `init` of a target and filter that a capture has already, with `--decode` rules other
/// than that capture's: refused, since changing what a running capture decodes (perhaps
/// someone else's, feeding their dashboards) is not what adding an alias should do.
/// Without `--decode`, or with the same rules in any order, the alias is added as usual.
fn other_decode_rules(existing: &CaptureInfo, spec: &CaptureSpec) -> Option<Error> {
    let same = spec.decode.len() == existing.decode.len()
        && spec.decode.iter().all(|r| existing.decode.contains(r));
    if spec.decode.is_empty() || same {
        return None;
    }
    let rules = |r: &[pcap_decode::ProtoRule]| match r {
        [] => "nothing".to_owned(),
        r => r
            .iter()
            .map(|r| format!("--decode {r}"))
            .collect::<Vec<_>>()
            .join(" "),
    };
    Some(Error::AlreadyExists(format!(
        "{} has this target and filter already and decodes {}, not {}; init it without \
         --decode to add an alias, or delete it with `pcap delete {}` and init it again with \
         the rules you want",
        label(existing),
        rules(&existing.decode),
        rules(&spec.decode),
        existing.id
    )))
}

/// Sends a command to every capture at once and waits for all answers; the first error
/// is returned after every capture has answered. A capture deleted meanwhile is left out.
async fn each<T>(
    captures: &[CaptureRef],
    make: impl Fn(tokio::sync::oneshot::Sender<Result<T>>) -> Command,
) -> Result<Vec<T>> {
    let mut waiting = Vec::new();
    for c in captures {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if c.send(make(tx)) {
            waiting.push(rx);
        }
    }
    let single = captures.len() == 1;
    let mut out = Vec::new();
    let mut first_error = None;
    for rx in waiting {
        match rx.await {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if single && out.is_empty() {
        let gone = captures[0].view.with(label);
        return Err(Error::NotFound(format!(
            "no {gone} any more: it was deleted meanwhile; `pcap list` shows the captures"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::tests_support::capture_info;

    fn spec(rules: &[&str]) -> CaptureSpec {
        CaptureSpec {
            target: Default::default(),
            filter: String::new(),
            aliases: vec![],
            snaplen: 0,
            promisc: true,
            stop: Default::default(),
            retention: Default::default(),
            decode: rules.iter().map(|r| r.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn init_with_other_decode_rules_is_refused_saying_which() {
        let mut existing = capture_info();
        existing.decode = vec!["http:80".parse().unwrap(), "dns".parse().unwrap()];
        assert!(other_decode_rules(&existing, &spec(&[])).is_none());
        assert!(other_decode_rules(&existing, &spec(&["dns", "http:80"])).is_none());
        let refusal = other_decode_rules(&existing, &spec(&["http"])).unwrap();
        let msg = refusal.to_string();
        assert!(matches!(refusal, Error::AlreadyExists(_)));
        assert!(
            msg.contains("decodes --decode http:80 --decode dns, not --decode http"),
            "{msg}"
        );
        assert!(msg.contains("pcap delete 1"), "{msg}");
        existing.decode.clear();
        let msg = other_decode_rules(&existing, &spec(&["dns"]))
            .unwrap()
            .to_string();
        assert!(msg.contains("decodes nothing, not --decode dns"), "{msg}");
    }
}
