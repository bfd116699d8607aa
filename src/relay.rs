//! Wake-ups that cross actor threads, batched.
//!
//! When a call's connection and the app's stream live on different actor
//! threads, the call's task is woken from the other thread twice (the
//! manager's answer to `Send`, then the app's reply). On actix's
//! single-threaded runtimes each such wake-up queues the task remotely and
//! writes to the target thread's eventfd: a syscall per wake-up, plus an
//! event the woken thread has to collect. Replies come in batches (one read
//! of the app's stream carries many), so most of those are redundant.
//!
//! A thread that runs a [`Relay`] lets its tasks wait through
//! [`Relayed`]: a wake-up from another thread then only puts the task's
//! waker in the relay's queue, and only the first one since the relay last
//! ran wakes the relay itself. The relay, on its own thread, then wakes every
//! queued task as a local, syscall-free wake-up. A wake-up from the same
//! thread, or on a thread without a relay, goes straight to the task.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, ThreadId};

use futures::task::AtomicWaker;

thread_local! {
    /// This thread's relay, while one runs here.
    static HERE: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

struct Shared {
    thread: ThreadId,
    /// Tasks of this thread woken from other threads since the relay last ran.
    woken: Mutex<Vec<Waker>>,
    /// Whether the relay is already due to run: set by the first wake-up
    /// that finds it clear, cleared by the relay before it takes the queue,
    /// so a wake-up either finds the flag set and its waker still to be
    /// taken, or sets it and wakes the relay. None is missed.
    due: AtomicBool,
    relay: AtomicWaker,
}

/// The task that passes wake-ups from other threads on to this thread's
/// tasks. Spawn one per actor thread, on that thread; it never finishes.
pub struct Relay {
    shared: Arc<Shared>,
    /// Taken out of each drain, to be refilled without allocating.
    spare: Vec<Waker>,
}

impl Relay {
    /// A relay for the current thread; waits started on this thread from
    /// now on go through it.
    pub fn here() -> Self {
        let shared = Arc::new(Shared {
            thread: thread::current().id(),
            woken: Mutex::new(Vec::new()),
            due: AtomicBool::new(false),
            relay: AtomicWaker::new(),
        });
        HERE.with(|here| *here.borrow_mut() = Some(shared.clone()));
        Relay {
            shared,
            spare: Vec::new(),
        }
    }
}

impl Future for Relay {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.shared.relay.register(cx.waker());
        this.shared.due.store(false, Ordering::SeqCst);
        {
            let mut woken = this
                .shared
                .woken
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut *woken, &mut this.spare);
        }
        for waker in this.spare.drain(..) {
            waker.wake();
        }
        Poll::Pending
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        HERE.with(|here| {
            let mut here = here.borrow_mut();
            if here.as_ref().is_some_and(|s| Arc::ptr_eq(s, &self.shared)) {
                *here = None;
            }
        });
    }
}

/// A task's waker that, woken from another thread, queues at the relay.
struct RelayedWaker {
    task: Waker,
    shared: Arc<Shared>,
}

impl Wake for RelayedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if thread::current().id() == self.shared.thread {
            return self.task.wake_by_ref();
        }
        self.shared
            .woken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.task.clone());
        if !self.shared.due.swap(true, Ordering::SeqCst) {
            self.shared.relay.wake();
        }
    }
}

/// `future`, whose wake-ups from other threads go through this thread's
/// relay (if it has one).
pub fn relayed<F: Future>(future: F) -> Relayed<F> {
    Relayed {
        future,
        waker: None,
    }
}

pin_project_lite::pin_project! {
    /// See [`relayed`].
    pub struct Relayed<F> {
        #[pin]
        future: F,
        // The relayed waker last made, and the task waker it wraps.
        waker: Option<(Waker, Waker)>,
    }
}

impl<F: Future> Future for Relayed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let reuse = matches!(this.waker, Some((_, task)) if task.will_wake(cx.waker()));
        if !reuse {
            *this.waker = HERE.with(|here| {
                here.borrow().as_ref().map(|shared| {
                    let relayed = Waker::from(Arc::new(RelayedWaker {
                        task: cx.waker().clone(),
                        shared: shared.clone(),
                    }));
                    (relayed, cx.waker().clone())
                })
            });
        }
        match this.waker {
            Some((relayed, _)) => this.future.poll(&mut Context::from_waker(relayed)),
            None => this.future.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::oneshot;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// What the relay holds right now: queued wakers, and whether it is due.
    fn queued(relay: &Arc<Shared>) -> (usize, bool) {
        let woken = relay.woken.lock().unwrap().len();
        (woken, relay.due.load(Ordering::SeqCst))
    }

    fn this_relay() -> Arc<Shared> {
        HERE.with(|here| here.borrow().clone())
            .expect("a relay runs here")
    }

    /// Replies sent from another thread while this one is busy queue at the
    /// relay, which is woken once for all of them; then every task gets its
    /// reply.
    #[test]
    fn wake_ups_from_another_thread_are_queued_and_all_delivered() {
        const TASKS: usize = 50;
        let rt = current_thread();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            tokio::task::spawn_local(Relay::here());
            let relay = this_relay();
            let (senders, waits): (Vec<_>, Vec<_>) = (0..TASKS)
                .map(|i| {
                    let (tx, rx) = oneshot::channel::<usize>();
                    (
                        tx,
                        tokio::task::spawn_local(relayed(async move { (i, rx.await) })),
                    )
                })
                .unzip();
            // Let every task wait, then reply to all from another thread
            // while this one is blocked.
            tokio::task::yield_now().await;
            std::thread::spawn(move || {
                for (i, tx) in senders.into_iter().enumerate() {
                    tx.send(i).unwrap();
                }
            })
            .join()
            .unwrap();
            assert_eq!(queued(&relay), (TASKS, true));
            for wait in waits {
                let (i, reply) = wait.await.unwrap();
                assert_eq!(reply, Ok(i));
            }
            assert_eq!(queued(&relay), (0, false));
        });
    }

    /// A wake-up from the task's own thread goes straight to it.
    #[test]
    fn wake_ups_on_the_same_thread_skip_the_relay() {
        let rt = current_thread();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            tokio::task::spawn_local(Relay::here());
            let relay = this_relay();
            let (tx, rx) = oneshot::channel::<u8>();
            let wait = tokio::task::spawn_local(relayed(rx));
            tokio::task::yield_now().await;
            tx.send(7).unwrap();
            assert_eq!(queued(&relay), (0, false));
            assert_eq!(wait.await.unwrap(), Ok(7));
        });
    }

    /// Many threads waking many tasks at once lose none of the wake-ups.
    #[test]
    fn no_wake_up_is_lost_under_contention() {
        const ROUNDS: usize = 2000;
        let rt = current_thread();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            tokio::task::spawn_local(Relay::here());
            for _ in 0..ROUNDS / 100 {
                let (senders, waits): (Vec<_>, Vec<_>) = (0..100)
                    .map(|_| {
                        let (tx, rx) = oneshot::channel::<()>();
                        (tx, tokio::task::spawn_local(relayed(rx)))
                    })
                    .unzip();
                let mut senders = senders.into_iter();
                let wakers: Vec<_> = (0..4)
                    .map(|_| {
                        let batch: Vec<_> = senders.by_ref().take(25).collect();
                        std::thread::spawn(move || {
                            batch.into_iter().for_each(|tx| tx.send(()).unwrap())
                        })
                    })
                    .collect();
                for wait in waits {
                    let done = tokio::time::timeout(Duration::from_secs(10), wait).await;
                    assert!(matches!(done, Ok(Ok(Ok(())))), "a wake-up was lost");
                }
                wakers.into_iter().for_each(|w| w.join().unwrap());
            }
        });
    }
}
