//! Per-key try-locks: one operation per volume (or request name) at a time. A second caller
//! does not wait: it gets ABORTED and the sidecar retries, as the CSI spec asks.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::error::Error;

#[derive(Debug, Clone, Default)]
pub struct Locks {
    held: Arc<Mutex<HashSet<String>>>,
}

/// Releases its key on drop.
#[derive(Debug)]
pub struct LockGuard {
    held: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl Locks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Take `key`, or fail with [`Error::OperationPending`] (ABORTED) if it is held.
    pub fn try_lock(&self, key: &str) -> Result<LockGuard, Error> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if !held.insert(key.to_string()) {
            return Err(Error::OperationPending {
                key: key.to_string(),
            });
        }
        Ok(LockGuard {
            held: self.held.clone(),
            key: key.to_string(),
        })
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_release() {
        let locks = Locks::new();
        let g = locks.try_lock("vol-1").unwrap();
        let err = locks.try_lock("vol-1").unwrap_err();
        assert_eq!(tonic::Status::from(err).code(), tonic::Code::Aborted);
        assert!(
            locks.try_lock("vol-2").is_ok(),
            "other keys are independent"
        );
        drop(g);
        assert!(locks.try_lock("vol-1").is_ok());
    }
}
