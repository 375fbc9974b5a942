//! [`Coalesce`]: one run at a time of a kind of work (fetching history, refreshing the list,
//! telling read marks), however often it is asked for. An ask while a run is on makes one
//! more run after it, so nothing asked is missed and nothing runs twice at once.

use std::cell::Cell;

/// See the [module](self).
#[derive(Debug, Default)]
pub struct Coalesce {
    running: Cell<bool>,
    again: Cell<bool>,
}

impl Coalesce {
    /// Asks for a run: `true` when the caller should start one now; `false` when one is on
    /// (it will run once more when it ends).
    pub fn start(&self) -> bool {
        if self.running.replace(true) {
            self.again.set(true);
            false
        } else {
            true
        }
    }

    /// At the end of a run: `true` when it was asked for meanwhile (run again); else the work
    /// is done and the next ask starts a new run.
    pub fn again(&self) -> bool {
        if self.again.replace(false) {
            true
        } else {
            self.running.set(false);
            false
        }
    }

    /// Whether a run is on.
    pub fn running(&self) -> bool {
        self.running.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_during_a_run_make_exactly_one_more_run() {
        let work = Coalesce::default();
        assert!(work.start(), "nothing runs: start");
        assert!(!work.start(), "one is on");
        assert!(!work.start(), "still one");
        assert!(work.again(), "asked meanwhile: once more");
        assert!(!work.again(), "then done");
        assert!(!work.running());
        assert!(work.start(), "a later ask starts anew");
    }

    #[test]
    fn a_run_nobody_asked_for_again_ends() {
        let work = Coalesce::default();
        assert!(work.start());
        assert!(!work.again());
        assert!(work.start());
    }
}
