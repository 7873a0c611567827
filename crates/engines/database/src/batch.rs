//! Group revocation: requests that arrive while one batch of work runs wait together and run
//! as the next batch, the way a database groups commits.
//!
//! Dropping users one statement at a time costs the database a transaction, a commit and a
//! round of catalog invalidation per user; one `DROP ROLE a, b, c` pays them once. A request
//! that finds nothing running runs at once, alone, on its own task: a lone client waits for
//! nobody and pays no hand-off. Requests arriving meanwhile queue; when the running batch ends,
//! its leader answers its followers and makes the first queued request the next leader, which
//! takes the whole queue along.

use std::{
    mem,
    sync::{Mutex, PoisonError},
};

use tokio::sync::oneshot;

use crate::plugin::{DbError, DbResult};

/// Revocation batches of one database connection running at a time. Measured with PostgreSQL
/// group-role members (two runs each), two at a time revoked a little faster at 4 clients
/// (8.9k against 8.1k a second) and clearly slower at 16 (14.4k against 17.5k), where the
/// batches got smaller.
pub(crate) const REVOCATION_BATCHES: usize = 1;

/// Most items in one batch, so statements stay of reasonable length.
pub(crate) const MAX_BATCH: usize = 64;

/// Gathers items of type `T` into batches, at most [`Batcher::new`]'s number of them running
/// at a time.
pub(crate) struct Batcher<T> {
    state: Mutex<State<T>>,
    most_running: usize,
}

struct State<T> {
    running: usize,
    queue: Vec<Waiter<T>>,
}

struct Waiter<T> {
    item: T,
    reply: oneshot::Sender<Signal<T>>,
}

enum Signal<T> {
    /// The batch holding the item ran; this is the item's outcome.
    Done(DbResult<()>),
    /// The previous batch ended: the receiver leads the next one, starting with its own item.
    Lead(T),
}

impl<T: Clone> Batcher<T> {
    /// A batcher running at most `most_running` batches at a time (at least one).
    pub(crate) fn new(most_running: usize) -> Self {
        Batcher {
            state: Mutex::new(State {
                running: 0,
                queue: Vec::new(),
            }),
            most_running: most_running.max(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `item` in a batch: `work` gets the batch's items, this one first, and returns one
    /// outcome per item, in order. A leader cancelled mid-batch puts its followers back at the
    /// head of the queue, and the next leader runs their items again: the work must be
    /// idempotent, as revocation is.
    pub(crate) async fn run<F, Fut>(&self, item: T, work: F) -> DbResult<()>
    where
        F: FnOnce(Vec<T>) -> Fut,
        Fut: Future<Output = Vec<DbResult<()>>>,
    {
        let waiting = {
            let mut state = self.state();
            if state.running >= self.most_running {
                let (reply, answer) = oneshot::channel();
                state.queue.push(Waiter { item, reply });
                Err(answer)
            } else {
                state.running += 1;
                Ok(item)
            }
        };
        let item = match waiting {
            Ok(item) => item,
            Err(answer) => match answer.await {
                Ok(Signal::Done(outcome)) => return outcome,
                Ok(Signal::Lead(item)) => item,
                // Only a panic in the leader's work drops a reply unanswered.
                Err(_) => {
                    return Err(DbError::Statement(
                        "the revocation batch ended without an answer".into(),
                    ));
                }
            },
        };
        let mut leader = Leadership {
            batcher: self,
            followers: Vec::new(),
        };
        let mut items = vec![item];
        {
            let mut state = self.state();
            let take = state.queue.len().min(MAX_BATCH - 1);
            for waiter in state.queue.drain(..take) {
                items.push(waiter.item.clone());
                leader.followers.push(waiter);
            }
        }
        let mut outcomes = work(items).await.into_iter();
        let own = outcomes.next().unwrap_or_else(|| {
            Err(DbError::Statement(
                "the revocation batch lost an item".into(),
            ))
        });
        for waiter in mem::take(&mut leader.followers) {
            let outcome = outcomes.next().unwrap_or_else(|| {
                Err(DbError::Statement(
                    "the revocation batch lost an item".into(),
                ))
            });
            // A follower that stopped waiting no longer needs its answer.
            let _ = waiter.reply.send(Signal::Done(outcome));
        }
        own
    }
}

/// The running batch's leader. Dropped, it passes leadership on to the first queued waiter
/// still listening, or to nobody; dropped before answering its followers (cancelled), it first
/// puts them back at the head of the queue.
struct Leadership<'a, T> {
    batcher: &'a Batcher<T>,
    followers: Vec<Waiter<T>>,
}

impl<T> Drop for Leadership<'_, T> {
    fn drop(&mut self) {
        let mut state = self
            .batcher
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let unanswered = mem::take(&mut self.followers);
        state.queue.splice(0..0, unanswered);
        while !state.queue.is_empty() {
            let next = state.queue.remove(0);
            match next.reply.send(Signal::Lead(next.item)) {
                Ok(()) => return,
                // That waiter was cancelled; its item goes with it.
                Err(_) => continue,
            }
        }
        state.running -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_lone_item_runs_at_once_on_its_own() {
        let batcher = Batcher::new(1);
        let mut seen = Vec::new();
        let outcome = batcher
            .run(7, |items| {
                seen = items;
                async { vec![Ok(())] }
            })
            .await;
        assert!(outcome.is_ok());
        assert_eq!(seen, vec![7]);
        assert_eq!(batcher.state().running, 0);
    }

    #[tokio::test]
    async fn items_arriving_during_a_batch_run_together_as_the_next_one() {
        let batcher = Arc::new(Batcher::new(1));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = tokio::sync::watch::channel(false);
        let first = {
            let (batcher, batches, mut released) =
                (Arc::clone(&batcher), Arc::clone(&batches), released.clone());
            tokio::spawn(async move {
                batcher
                    .run(0, |items| async move {
                        batches.lock().unwrap().push(items);
                        released.wait_for(|go| *go).await.unwrap();
                        vec![Ok(())]
                    })
                    .await
            })
        };
        while batcher.state().running == 0 {
            tokio::task::yield_now().await;
        }
        let mut others = Vec::new();
        for n in 1..=5 {
            let (batcher, batches) = (Arc::clone(&batcher), Arc::clone(&batches));
            others.push(tokio::spawn(async move {
                batcher
                    .run(n, |items| async move {
                        let outcomes = items
                            .iter()
                            .map(|n| {
                                if n % 2 == 0 {
                                    Err(DbError::Statement(format!("item {n} failed")))
                                } else {
                                    Ok(())
                                }
                            })
                            .collect();
                        batches.lock().unwrap().push(items);
                        outcomes
                    })
                    .await
            }));
        }
        while batcher.state().queue.len() < 5 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert!(first.await.unwrap().is_ok());
        for (n, other) in (1..=5).zip(others) {
            let outcome = other.await.unwrap();
            assert_eq!(outcome.is_ok(), n % 2 == 1, "item {n}: {outcome:?}");
        }
        let mut batches = batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 2, "{batches:?}");
        let mut second = batches.pop().unwrap();
        second.sort();
        assert_eq!(second, vec![1, 2, 3, 4, 5]);
        assert_eq!(batcher.state().running, 0);
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_its_followers_to_a_new_leader() {
        let batcher = Arc::new(Batcher::new(1));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = tokio::sync::watch::channel(false);
        // Each task's work: the first holds the batcher until released, the second never
        // finishes (its task is aborted), the third succeeds.
        let spawn = |n: u32| {
            let (batcher, batches, mut released) =
                (Arc::clone(&batcher), Arc::clone(&batches), released.clone());
            tokio::spawn(async move {
                batcher
                    .run(n, |items| async move {
                        batches.lock().unwrap().push(items.clone());
                        match n {
                            0 => released.wait_for(|go| *go).await.map(|_| ()).unwrap(),
                            1 => std::future::pending::<()>().await,
                            _ => {}
                        }
                        items.iter().map(|_| Ok(())).collect()
                    })
                    .await
            })
        };
        let first = spawn(0);
        while batcher.state().running == 0 {
            tokio::task::yield_now().await;
        }
        let stuck = spawn(1);
        while batcher.state().queue.is_empty() {
            tokio::task::yield_now().await;
        }
        let last = spawn(2);
        while batcher.state().queue.len() < 2 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert!(first.await.unwrap().is_ok());
        while batches.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
        }
        stuck.abort();
        assert!(stuck.await.unwrap_err().is_cancelled());
        assert!(last.await.unwrap().is_ok());
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches, vec![vec![0], vec![1, 2], vec![2]]);
        assert_eq!(batcher.state().running, 0);
    }
}
