//! `--pods-history`: which pod held an address when. JSON Lines, one entry per line:
//! `{"ip": "10.0.1.5", "pod": "ns/name", "from": RFC 3339, "to": RFC 3339 or null}`. An entry
//! covers `from ≤ t < to` (`to` null: the pod still has the address). Pod addresses are reused
//! as pods come and go, so a flow's address means the pod that held it at the flow's time.

use jiff::Timestamp;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::BufRead;
use std::net::IpAddr;

/// A history entry that does not read, with its line.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A line that is not an entry.
    #[error("line {line}: {message}")]
    Line {
        /// Line number (from 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The history could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    ip: String,
    pod: String,
    from: String,
    to: Option<String>,
}

/// One pod's tenure of an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenure {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// From this time on.
    pub from: Timestamp,
    /// Until this time (excluded); `None` while the pod still has the address.
    pub to: Option<Timestamp>,
}

impl Tenure {
    fn covers(&self, time: Timestamp) -> bool {
        self.from <= time && self.to.is_none_or(|to| time < to)
    }
}

/// What the history says about an address at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder<'h> {
    /// The history does not list the address: ask the inventory.
    NotListed,
    /// The address is listed and this pod held it then.
    Pod(&'h Tenure),
    /// The address is listed but no entry covers the time (or the flow has none): it was
    /// no pod's then.
    Nobody,
}

/// Every address's tenures.
#[derive(Clone, Debug, Default)]
pub struct History {
    by_address: HashMap<IpAddr, Vec<Tenure>>,
}

impl History {
    /// Read a history (JSON Lines; blank lines ignored).
    pub fn read(input: impl BufRead) -> Result<Self, HistoryError> {
        let mut history = History::default();
        for (index, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let error = |message: String| HistoryError::Line {
                line: index + 1,
                message,
            };
            let raw: RawEntry = serde_json::from_str(&line).map_err(|e| error(e.to_string()))?;
            let ip = raw
                .ip
                .parse::<IpAddr>()
                .map_err(|_| error(format!("ip {:?} is not an IP address", raw.ip)))?;
            let Some((namespace, name)) = raw.pod.split_once('/') else {
                return Err(error(format!("pod {:?} is not namespace/name", raw.pod)));
            };
            let time = |text: &str, what: &str| {
                crate::parse_time(text)
                    .ok_or_else(|| error(format!("{what} {text:?} is not an RFC 3339 time")))
            };
            let from = time(&raw.from, "from")?;
            let to = raw.to.as_deref().map(|to| time(to, "to")).transpose()?;
            if to.is_some_and(|to| to < from) {
                return Err(error("to is before from".to_string()));
            }
            history.by_address.entry(ip).or_default().push(Tenure {
                namespace: namespace.to_string(),
                name: name.to_string(),
                from,
                to,
            });
        }
        for tenures in history.by_address.values_mut() {
            tenures.sort_by_key(|tenure| tenure.from);
        }
        Ok(history)
    }

    /// How many addresses are listed.
    pub fn addresses(&self) -> usize {
        self.by_address.len()
    }

    /// Who held `ip` at `time` (the latest entry that covers it, should entries overlap).
    pub fn holder(&self, ip: IpAddr, time: Option<Timestamp>) -> Holder<'_> {
        let Some(tenures) = self.by_address.get(&ip) else {
            return Holder::NotListed;
        };
        let Some(time) = time else {
            return Holder::Nobody;
        };
        tenures
            .iter()
            .rev()
            .find(|tenure| tenure.covers(time))
            .map_or(Holder::Nobody, Holder::Pod)
    }

    /// The times around `time` over which [`History::holder`] of `ip` gives the same answer:
    /// `[from, to)`, `None` for unbounded. The answer depends only on which tenures cover
    /// the time, which changes only at a tenure's `from` or `to`.
    pub fn steady(&self, ip: IpAddr, time: Timestamp) -> (Option<Timestamp>, Option<Timestamp>) {
        let Some(tenures) = self.by_address.get(&ip) else {
            return (None, None);
        };
        let (mut from, mut to) = (None::<Timestamp>, None::<Timestamp>);
        for bound in tenures
            .iter()
            .flat_map(|tenure| std::iter::once(tenure.from).chain(tenure.to))
        {
            if bound <= time {
                from = Some(from.map_or(bound, |f| f.max(bound)));
            } else {
                to = Some(to.map_or(bound, |t| t.min(bound)));
            }
        }
        (from, to)
    }
}
