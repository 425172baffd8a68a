//! A blocking face of the watch stream for callers without an async runtime (the enforcement
//! agent): connect and read everything ([`Feed::connect`]), then take the object changes
//! burst by burst ([`Feed::next_burst`]), each with the moment its first event arrived.

use crate::watch::{Follower, Update};
use crate::{Error, ReadSummary, Source};
use netfence_model::Loader;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The client, its runtime and the watchers, after a first complete read.
pub struct Feed {
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    follower: Follower,
}

/// A burst of object changes, coalesced per object (the last change of each wins, in the
/// order objects first changed).
#[derive(Debug, Default)]
pub struct Burst {
    /// The changes.
    pub updates: Vec<Update>,
    /// When its first event arrived.
    pub received: Option<Instant>,
    /// Watch errors met meanwhile (the watchers retry by themselves, with backoff).
    pub errors: Vec<Error>,
}

impl Feed {
    /// Connect to `source`, feed every object into `loader`, and start the watchers.
    pub fn connect(source: &Source, loader: &mut Loader) -> Result<(Feed, ReadSummary), Error> {
        let runtime = crate::runtime()?;
        let (client, summary, tracker) = runtime.block_on(async {
            let client = crate::client(source).await?;
            let (summary, tracker) = crate::snapshot(&client, loader, crate::PAGE_SIZE).await?;
            Ok::<_, Error>((client, summary, tracker))
        })?;
        let follower = runtime.block_on(async { Follower::new(&client, tracker) });
        Ok((
            Feed {
                runtime,
                client,
                follower,
            },
            summary,
        ))
    }

    /// The watchers.
    pub fn follower(&self) -> &Follower {
        &self.follower
    }

    /// `spec.podCIDRs` (else `spec.podCIDR`) of Node `name`.
    pub fn node_pod_cidrs(&self, name: &str) -> Result<Vec<String>, Error> {
        let what = format!("get /api/v1/nodes/{name}");
        let request = kube::core::Request::new("/api/v1/nodes")
            .get(name, &kube::api::GetParams::default())
            .map_err(|e| Error::Protocol {
                what: what.clone(),
                message: e.to_string(),
            })?;
        let node: serde_json::Value = self
            .runtime
            .block_on(self.client.request(request))
            .map_err(|source| Error::Api { what, source })?;
        let spec = node.get("spec");
        let listed: Vec<String> = spec
            .and_then(|s| s.get("podCIDRs"))
            .and_then(|c| c.as_array())
            .map(|c| {
                c.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if !listed.is_empty() {
            return Ok(listed);
        }
        Ok(spec
            .and_then(|s| s.get("podCIDR"))
            .and_then(|c| c.as_str())
            .map(|c| vec![c.to_string()])
            .unwrap_or_default())
    }

    /// Wait up to `idle` for a first change, then gather changes until none came for
    /// `debounce` (or `longest` passed since the first: a steady stream still gets applied).
    /// `should_stop` is asked between waits.
    pub fn next_burst(
        &mut self,
        idle: Duration,
        debounce: Duration,
        longest: Duration,
        should_stop: &dyn Fn() -> bool,
    ) -> Burst {
        let mut burst = Burst::default();
        let mut index: HashMap<netfence_model::ObjectKey, usize> = HashMap::new();
        let mut wait = idle;
        loop {
            let next = self.runtime.block_on(self.follower.next_or_idle(wait));
            match next {
                None => break,
                Some(Err(error)) => burst.errors.push(error),
                Some(Ok(updates)) if updates.is_empty() => {
                    // Quiet for `wait`: the burst (if any) has settled.
                    break;
                }
                Some(Ok(updates)) => {
                    let now = Instant::now();
                    burst.received.get_or_insert(now);
                    for update in updates {
                        match index.get(&update.key) {
                            Some(&at) => burst.updates[at] = update,
                            None => {
                                index.insert(update.key.clone(), burst.updates.len());
                                burst.updates.push(update);
                            }
                        }
                    }
                }
            }
            if should_stop() {
                break;
            }
            match burst.received {
                Some(first) if first.elapsed() >= longest => break,
                Some(_) => wait = debounce,
                None => {}
            }
        }
        burst
    }
}
