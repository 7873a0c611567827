//! Re-polling a task's future in place when it wakes itself, instead of rescheduling the task.
//!
//! A task that is woken while it is being polled (a tokio-postgres connection task, woken by the
//! request it is about to serve) is requeued by tokio's multi-threaded scheduler as if it had
//! yielded, and an idle worker is woken to share the work. On a small machine that futex wake
//! sits on the request's path (5 to 25 µs on a 2-core VM) and often moves the connection to the
//! other core. [`InlineWakes`] polls the future again at once instead, a bounded number of
//! times, and passes every other wake through.
//!
//! HTTP connections take it only under a gate ([`InlineWakes::gated`]): hyper's body channel
//! wakes its own connection task on every request body read too, but with many requests in
//! flight the scheduler's wake-up of the idle worker is what spreads them over the cores;
//! absorbed always, token creations at 16 clients were 10 to 15% slower in the leases and auth
//! benchmarks. The gate absorbs the wake only when nothing else is there to spread.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

/// How many times in a row a future that keeps waking itself is polled again before the task
/// yields to the scheduler, so one busy task cannot starve the others on its worker.
const MAX_INLINE_POLLS: u32 = 16;

/// Wraps a task's future; see the module documentation.
pub struct InlineWakes<F> {
    inner: Pin<Box<F>>,
    shared: Arc<Shared>,
    waker: Waker,
}

struct Shared {
    /// Set while the inner future is being polled.
    polling: AtomicBool,
    /// A wake that arrived while `polling` was set.
    woken: AtomicBool,
    /// The task's own waker, for every wake that must reach the scheduler.
    task: Mutex<Option<Waker>>,
    /// Asked at each wake during a poll: absorb it (true) or pass it to the scheduler.
    gate: Option<Gate>,
}

/// Decides, at a wake during a poll, whether re-polling in place is worth more than letting
/// the scheduler see it.
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

impl Shared {
    fn wake_task(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.polling.load(Ordering::SeqCst) && self.gate.as_ref().is_none_or(|gate| gate()) {
            self.woken.store(true, Ordering::SeqCst);
            // The poll may have ended between the load and the store without seeing the flag;
            // then exactly one of this swap and the poller's takes it, so the wake is neither
            // lost nor delivered twice.
            if !self.polling.load(Ordering::SeqCst) && self.woken.swap(false, Ordering::SeqCst) {
                self.wake_task();
            }
        } else {
            self.wake_task();
        }
    }
}

impl<F: Future> InlineWakes<F> {
    pub fn new(inner: F) -> Self {
        Self::with_gate(inner, None)
    }

    /// Absorbs a wake during a poll only when `gate` says so at that moment.
    pub fn gated(inner: F, gate: Gate) -> Self {
        Self::with_gate(inner, Some(gate))
    }

    fn with_gate(inner: F, gate: Option<Gate>) -> Self {
        let shared = Arc::new(Shared {
            polling: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            task: Mutex::new(None),
            gate,
        });
        InlineWakes {
            inner: Box::pin(inner),
            waker: Waker::from(shared.clone()),
            shared,
        }
    }
}

impl<F: Future> Future for InlineWakes<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        {
            let mut task = this
                .shared
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !task.as_ref().is_some_and(|task| task.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..MAX_INLINE_POLLS {
            this.shared.polling.store(true, Ordering::SeqCst);
            let result = this.inner.as_mut().poll(&mut inner_cx);
            this.shared.polling.store(false, Ordering::SeqCst);
            if result.is_ready() {
                return result;
            }
            if !this.shared.woken.swap(false, Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        // Still waking itself: let the scheduler run others first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A task waker that counts its wakes.
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Counting>, Waker) {
        let counter = Arc::new(Counting(AtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    /// Wakes itself `self_wakes` times during its polls, then finishes.
    struct SelfWaking {
        self_wakes: u32,
        polls: u32,
    }

    impl Future for SelfWaking {
        type Output = u32;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            self.polls += 1;
            if self.self_wakes == 0 {
                return Poll::Ready(self.polls);
            }
            self.self_wakes -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn self_wakes_are_polled_again_without_waking_the_task() {
        let (counter, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut future = InlineWakes::new(SelfWaking {
            self_wakes: 3,
            polls: 0,
        });
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Ready(4));
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_closed_gate_passes_self_wakes_to_the_scheduler() {
        let (counter, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let open = Arc::new(AtomicBool::new(false));
        let gate: Gate = {
            let open = open.clone();
            Arc::new(move || open.load(Ordering::SeqCst))
        };
        let mut future = InlineWakes::gated(
            SelfWaking {
                self_wakes: 2,
                polls: 0,
            },
            gate,
        );
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "the wake reached the task"
        );
        open.store(true, Ordering::SeqCst);
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Ready(3));
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "absorbed once the gate opened"
        );
    }

    #[test]
    fn a_future_that_keeps_waking_itself_yields_to_the_scheduler() {
        let (counter, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut future = InlineWakes::new(SelfWaking {
            self_wakes: u32::MAX,
            polls: 0,
        });
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "woken to be polled later"
        );
        assert_eq!(future.inner.polls, MAX_INLINE_POLLS);
    }

    #[test]
    fn wakes_between_polls_reach_the_task() {
        let (counter, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let stored = Arc::new(Mutex::new(None::<Waker>));
        let keeps_waker = {
            let stored = stored.clone();
            std::future::poll_fn(move |cx| {
                *stored.lock().unwrap() = Some(cx.waker().clone());
                Poll::<()>::Pending
            })
        };
        let mut future = InlineWakes::new(keeps_waker);
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        let inner_waker = stored.lock().unwrap().clone().unwrap();
        std::thread::spawn(move || inner_waker.wake())
            .join()
            .unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_racing_with_polls_are_never_lost() {
        // A channel fed from another thread: every message must be received, whether its wake
        // lands during a poll or between polls.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let sender = std::thread::spawn(move || {
            for i in 0..20_000 {
                tx.send(i).unwrap();
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let received = tokio::spawn(InlineWakes::new(async move {
            let mut count = 0u32;
            while rx.recv().await.is_some() {
                count += 1;
            }
            count
        }));
        sender.join().unwrap();
        assert_eq!(received.await.unwrap(), 20_000);
    }
}
