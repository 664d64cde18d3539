//! `memory`: an atomic in-process counter, the embedded default.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{BoxFuture, Counter, StoreError};

#[derive(Debug, Default)]
pub struct MemoryCounter(AtomicU64);

impl MemoryCounter {
    pub fn starting_at(count: u64) -> Self {
        MemoryCounter(AtomicU64::new(count))
    }
}

impl Counter for MemoryCounter {
    fn increment(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        let count = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        Box::pin(std::future::ready(Ok(count)))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_hits_are_never_lost_in_memory() {
        let counter = Arc::new(MemoryCounter::default());
        let seen = crate::testing::hammer(std::slice::from_ref(&counter), 200).await;
        assert_eq!(seen, (1..=200).collect::<Vec<u64>>(), "every caller got a distinct count");
        assert_eq!(counter.increment().await.unwrap(), 201);
    }
}
