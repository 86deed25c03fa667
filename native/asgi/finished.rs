//! A request's "finished" flag: set once its response is complete or its client went away;
//! the tasks reading its body or waiting for `http.disconnect` wait on it.
//!
//! An atomic and a `Notify` (setting it when nobody waits costs a store and one atomic add),
//! where a `watch` channel allocated a shared block per request and notified eight lists on
//! every send.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Finished {
    set: AtomicBool,
    notify: Notify,
}

impl Finished {
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Sets the flag (again, harmlessly) and wakes every waiter.
    pub fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Resolves once the flag is set (at once if it is).
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_waiter_wakes_when_set_and_a_late_one_at_once() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let finished = Arc::new(Finished::default());
            let waiter = tokio::spawn({
                let finished = finished.clone();
                async move { finished.wait().await }
            });
            tokio::task::yield_now().await;
            assert!(!finished.is_set());
            finished.set();
            waiter.await.unwrap();
            finished.wait().await;
            assert!(finished.is_set());
        });
    }
}
