//! Work that outlives whoever asked for it, on threads of its own, and a
//! way to wait for all of it before the process exits.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

#[derive(Debug, Default)]
pub(crate) struct Background(Mutex<Vec<JoinHandle<()>>>);

impl Background {
    /// Runs `work` on a new thread named `name`.
    pub(crate) fn spawn(&self, name: &str, work: impl FnOnce() + Send + 'static) {
        let mut threads = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        threads.retain(|thread| !thread.is_finished());
        match std::thread::Builder::new().name(name.into()).spawn(work) {
            Ok(thread) => threads.push(thread),
            Err(e) => log::error!("cannot start a {name} thread: {e}"),
        }
    }

    /// Waits for everything spawned so far.
    pub(crate) async fn settle(self: &Arc<Self>) {
        let threads = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        if !threads.is_empty() {
            let _ = tokio::task::spawn_blocking(move || {
                threads.into_iter().for_each(|thread| drop(thread.join()));
            })
            .await;
        }
    }
}
