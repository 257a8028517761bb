//! Who may hold how many unfinished flows. Each client network (an IPv4 address, an IPv6
//! /64, which one subscriber usually holds whole) may hold a fixed number, and when the
//! node holds its most, a network below its fair share (the capacity divided by the
//! networks holding flows) takes the oldest flow of the network holding the most. So a
//! crowd of addresses can push out only each other's flows, never a lone user's one.
//! A plain map under one lock: every operation is O(1) except the once-a-second sweep of
//! expired entries and the search for the largest holder, which runs only when full.
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// The network an address counts against.
pub fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
        v4 => v4,
    }
}

/// Why a network may not begin another flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It holds its own maximum.
    OwnLimit,
    /// The node is full and this network already holds its fair share.
    FairShare,
}

/// A flow (by id) and when it expires (unix ms).
type Held = VecDeque<(u64, Box<str>)>;

#[derive(Default)]
struct Inner {
    by_network: HashMap<IpAddr, Held>,
    total: usize,
    next_sweep: u64,
}

impl Inner {
    fn sweep(&mut self, now: u64) {
        let mut total = 0;
        self.by_network.retain(|_, held| {
            held.retain(|(end, _)| *end > now);
            total += held.len();
            !held.is_empty()
        });
        self.total = total;
    }
}

/// The flow quota of one node.
pub struct FlowQuota {
    capacity: usize,
    per_network: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for FlowQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowQuota")
            .field("capacity", &self.capacity)
            .field("per_network", &self.per_network)
            .finish_non_exhaustive()
    }
}

impl FlowQuota {
    /// At most `capacity` flows in all, `per_network` per network.
    pub fn new(capacity: usize, per_network: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            per_network: per_network.max(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts flow `id` (expiring at `expires`) against `ip`'s network. Returns the id of a
    /// flow it displaced, which the caller ends.
    pub fn admit(
        &self,
        ip: IpAddr,
        id: &str,
        now: u64,
        expires: u64,
    ) -> Result<Option<Box<str>>, Refused> {
        let net = network(ip);
        let mut inner = self.lock();
        if now >= inner.next_sweep {
            inner.sweep(now);
            inner.next_sweep = now + 1_000;
        }
        let (expired, own) = inner.by_network.get_mut(&net).map_or((0, 0), |held| {
            let before = held.len();
            held.retain(|(end, _)| *end > now);
            let left = held.len();
            // Counted here so `total` stays exact between sweeps.
            (before - left, left)
        });
        inner.total -= expired;
        if own >= self.per_network {
            return Err(Refused::OwnLimit);
        }
        let mut displaced = None;
        if inner.total >= self.capacity {
            let holders = inner.by_network.len() + usize::from(own == 0);
            if own >= self.capacity / holders.max(1) {
                return Err(Refused::FairShare);
            }
            let largest = inner
                .by_network
                .iter()
                .max_by_key(|(_, held)| held.len())
                .map(|(n, _)| *n);
            if let Some(largest) = largest {
                if let Some(held) = inner.by_network.get_mut(&largest) {
                    displaced = held.pop_front().map(|(_, id)| id);
                    if held.is_empty() {
                        inner.by_network.remove(&largest);
                    }
                }
                inner.total -= usize::from(displaced.is_some());
            }
        }
        inner
            .by_network
            .entry(net)
            .or_default()
            .push_back((expires, id.into()));
        inner.total += 1;
        Ok(displaced)
    }

    /// Flow `id` of `ip`'s network finished: it no longer counts.
    pub fn release(&self, ip: IpAddr, id: &str) {
        let net = network(ip);
        let mut inner = self.lock();
        let Some(held) = inner.by_network.get_mut(&net) else {
            return;
        };
        let Some(at) = held.iter().position(|(_, h)| &**h == id) else {
            return;
        };
        held.remove(at);
        if held.is_empty() {
            inner.by_network.remove(&net);
        }
        inner.total -= 1;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn one_ipv6_subscriber_is_one_network() {
        assert_eq!(network(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            network(ip("2001:db8:1:2:ffff:1:2:3")),
            network(ip("2001:db8:1:2::9"))
        );
        assert_ne!(
            network(ip("2001:db8:1:3::1")),
            network(ip("2001:db8:1:2::1"))
        );
        assert_eq!(network(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn a_network_holds_at_most_its_own_limit_across_its_addresses() {
        let q = FlowQuota::new(1_000, 3);
        for (n, a) in ["2001:db8::1", "2001:db8::2", "2001:db8::3"]
            .iter()
            .enumerate()
        {
            assert_eq!(q.admit(ip(a), &format!("f{n}"), 0, 100), Ok(None));
        }
        assert_eq!(
            q.admit(ip("2001:db8::4"), "f4", 0, 100),
            Err(Refused::OwnLimit)
        );
        // Expired flows stop counting by themselves.
        assert_eq!(q.admit(ip("2001:db8::4"), "f5", 100, 200), Ok(None));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn a_crowd_displaces_its_own_flows_never_a_lone_users() {
        let q = FlowQuota::new(2_000, 100);
        assert_eq!(q.admit(ip("192.0.2.1"), "victim", 0, 1_000_000), Ok(None));
        // 201 attacking networks with 100 flows each: ten times what the node holds.
        let mut refused = 0;
        for a in 0..201u32 {
            let attacker = IpAddr::from((0x0a00_0000 + a).to_be_bytes());
            for n in 0..100 {
                match q.admit(attacker, &format!("{a}-{n}"), 1 + u64::from(a), 1_000_000) {
                    Ok(Some(d)) => assert_ne!(&*d, "victim", "the lone user's flow was displaced"),
                    Ok(None) => {}
                    Err(_) => refused += 1,
                }
            }
        }
        assert!(refused > 0);
        assert!(q.len() <= 2_000);
        // A newcomer below its share still gets a flow, by displacing one of the crowd.
        assert!(matches!(
            q.admit(ip("192.0.2.2"), "late", 2_000, 1_000_000),
            Ok(Some(_))
        ));
        q.release(ip("192.0.2.1"), "victim");
        assert!(q.len() <= 2_000);
    }
}
