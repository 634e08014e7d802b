//! Turns on a platform: how many runs of one node call one platform at once
//! (`ReplicationConfig::per_platform`), with urgent runs served first.
//!
//! A run takes its platform's turn before its first platform call and holds
//! it to its end. Waiting runs are served urgent first, then in the order
//! they came. The limit holds for urgent runs too: an urgent run that finds
//! every turn taken waits like any other, but asks one ordinary run that
//! holds a turn (the one that got it last, so the least work is set aside)
//! to yield: that run stops at its next step between platform calls, never
//! inside one, and hands its tenant back, so the urgent run waits at most
//! about one platform call. An ordinary run is asked through the token it
//! took its turn with, the same token that asks it to stop when the node
//! stops.
//!
//! This is the priority of Kubernetes' API Priority and Fairness applied to
//! a platform's concurrency: the seats are few and fixed; who waits for one
//! is ordered by priority; a seat is never added for the urgent.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The turns on one platform.
pub(crate) struct Turns {
    state: Mutex<State>,
    /// How many holders urgent runs asked to yield.
    asked: AtomicU64,
}

struct State {
    free: usize,
    urgent: VecDeque<Waiter>,
    ordinary: VecDeque<Waiter>,
    /// Ordinary runs holding a turn, in the order they got it, each with
    /// the token that asks it to yield.
    holders: BTreeMap<u64, CancellationToken>,
    next: u64,
}

struct Waiter {
    tx: oneshot::Sender<Turn>,
    /// An ordinary run's yield token; none for an urgent run.
    yield_to: Option<CancellationToken>,
}

/// A turn on a platform, given back when dropped.
pub(crate) struct Turn {
    turns: Option<Arc<Turns>>,
    /// Its key among the holders that may be asked to yield.
    holder: Option<u64>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(turns) = self.turns.take() {
            turns.give_back(self.holder);
        }
    }
}

impl Turns {
    pub(crate) fn new(capacity: usize) -> Arc<Turns> {
        Arc::new(Turns {
            state: Mutex::new(State {
                free: capacity.max(1),
                urgent: VecDeque::new(),
                ordinary: VecDeque::new(),
                holders: BTreeMap::new(),
                next: 0,
            }),
            asked: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for a turn. An ordinary run passes the token that asks it to
    /// yield (an urgent run that finds no turn free cancels one); an urgent
    /// run is never asked. Dropping the future gives up the wait (and a turn
    /// handed to it meanwhile goes to the next waiter).
    pub(crate) async fn take(self: &Arc<Self>, urgent: bool, yield_to: &CancellationToken) -> Turn {
        let rx = {
            let mut s = self.lock();
            if s.free > 0 {
                s.free -= 1;
                return self.turn(&mut s, (!urgent).then(|| yield_to.clone()));
            }
            let (tx, rx) = oneshot::channel();
            if urgent {
                s.urgent.push_back(Waiter { tx, yield_to: None });
                // the ordinary holder that got its turn last yields, unless already asked
                if let Some(token) = s.holders.values().rev().find(|t| !t.is_cancelled()) {
                    token.cancel();
                    self.asked.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                s.ordinary.push_back(Waiter { tx, yield_to: Some(yield_to.clone()) });
            }
            rx
        };
        match rx.await {
            Ok(turn) => turn,
            // the sender is dropped only with `Turns` itself, which this call holds
            Err(_) => Turn { turns: None, holder: None },
        }
    }

    /// How many urgent runs wait for a turn.
    #[cfg(test)]
    pub(crate) fn urgent_waiting(&self) -> usize {
        self.lock().urgent.iter().filter(|w| !w.tx.is_closed()).count()
    }

    /// How many ordinary holders urgent runs asked to yield so far.
    pub(crate) fn asked(&self) -> u64 {
        self.asked.load(Ordering::Relaxed)
    }

    fn turn(self: &Arc<Self>, s: &mut State, yield_to: Option<CancellationToken>) -> Turn {
        let holder = yield_to.map(|token| {
            let key = s.next;
            s.next += 1;
            s.holders.insert(key, token);
            key
        });
        Turn { turns: Some(self.clone()), holder }
    }

    fn give_back(self: &Arc<Self>, holder: Option<u64>) {
        let mut s = self.lock();
        if let Some(key) = holder {
            s.holders.remove(&key);
        }
        s.free += 1;
        // hand the free turns on: urgent waiters first, skipping those that gave up
        while s.free > 0 {
            let Some(w) = s.urgent.pop_front().or_else(|| s.ordinary.pop_front()) else { break };
            if w.tx.is_closed() {
                continue;
            }
            s.free -= 1;
            let turn = self.turn(&mut s, w.yield_to);
            if let Err(mut turn) = w.tx.send(turn) {
                // the waiter left between the check and the send: the turn stays here
                if let Some(key) = turn.holder.take() {
                    s.holders.remove(&key);
                }
                turn.turns = None;
                s.free += 1;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn token() -> CancellationToken {
        CancellationToken::new()
    }

    /// The limit holds: with every turn taken, a run waits until one is given back.
    #[tokio::test]
    async fn tn4_a_platform_is_never_called_by_more_runs_than_its_limit() {
        let turns = Turns::new(2);
        let (a, b) = (token(), token());
        let first = turns.take(false, &a).await;
        let _second = turns.take(false, &b).await;
        let c = token();
        let mut third = Box::pin(turns.take(false, &c));
        assert!((&mut third).now_or_never().is_none(), "a third run waits");
        drop(first);
        assert!(third.now_or_never().is_some(), "and gets the turn given back");
    }

    /// AD4: an urgent run waiting for a turn is served before ordinary
    /// runs that came earlier, and asks the ordinary holder that got its turn
    /// last to yield; it never takes more turns than the limit.
    #[tokio::test]
    async fn ad4_an_urgent_run_is_served_first_and_asks_one_ordinary_run_to_yield() {
        let turns = Turns::new(2);
        let (a, b, c) = (token(), token(), token());
        let first = turns.take(false, &a).await;
        let second = turns.take(false, &b).await;
        let mut ordinary = Box::pin(turns.take(false, &c));
        assert!((&mut ordinary).now_or_never().is_none());
        let never = token();
        let mut urgent = Box::pin(turns.take(true, &never));
        assert!((&mut urgent).now_or_never().is_none(), "the limit holds for urgent runs too");
        assert_eq!(turns.urgent_waiting(), 1);
        assert!(!a.is_cancelled() && b.is_cancelled(), "the holder that came last is asked to yield");
        assert!(!c.is_cancelled(), "a waiting run holds nothing to give");

        // a second urgent run asks the other holder
        let mut urgent2 = Box::pin(turns.take(true, &never));
        assert!((&mut urgent2).now_or_never().is_none());
        assert!(a.is_cancelled());

        drop(second);
        let u = (&mut urgent).now_or_never().expect("the urgent run gets the turn first");
        assert!((&mut ordinary).now_or_never().is_none(), "the ordinary run still waits");
        drop(first);
        let _u2 = (&mut urgent2).now_or_never().expect("urgent again");
        drop(u);
        assert!(ordinary.now_or_never().is_some(), "then the ordinary run");
        assert!(!never.is_cancelled(), "nobody asks an urgent run to yield");
    }

    /// A run that stops waiting loses nothing for the others: the turn goes
    /// to the next waiter.
    #[tokio::test]
    async fn tn4_a_run_that_stops_waiting_leaves_the_turn_to_the_next() {
        let turns = Turns::new(1);
        let first = turns.take(false, &token()).await;
        let (g, n) = (token(), token());
        let mut gone = Box::pin(turns.take(true, &g));
        assert!((&mut gone).now_or_never().is_none());
        let mut next = Box::pin(turns.take(false, &n));
        assert!((&mut next).now_or_never().is_none());
        drop(gone);
        drop(first);
        let turn = next.now_or_never().expect("the turn went on");
        drop(turn);
        assert!(turns.take(false, &token()).now_or_never().is_some(), "and came back");
    }
}
