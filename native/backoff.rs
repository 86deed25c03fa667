//! Accept errors (out of file descriptors, out of memory, ...): the accept loop neither dies
//! nor spins on them. It stops accepting for a pause that doubles from 10 ms up to 1 s while
//! the errors go on (asyncio, under uvicorn, pauses 1 s), and the handler is told once per
//! run of them, for a log line.

use std::time::Duration;

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

pub struct AcceptBackoff {
    pause: Duration,
    failing: bool,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            pause: FIRST_PAUSE,
            failing: false,
        }
    }
}

impl AcceptBackoff {
    /// A connection was accepted: the next error starts a new run.
    pub fn accepted(&mut self) {
        self.pause = FIRST_PAUSE;
        self.failing = false;
    }

    /// Accepting failed: how long to pause, and whether this error starts a run (to be told).
    pub fn failed(&mut self) -> (Duration, bool) {
        let first = !std::mem::replace(&mut self.failing, true);
        let pause = self.pause;
        self.pause = (pause * 2).min(LONGEST_PAUSE);
        (pause, first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_second_and_a_run_is_told_once() {
        let mut backoff = AcceptBackoff::default();
        let runs: Vec<_> = (0..9).map(|_| backoff.failed()).collect();
        let ms: Vec<_> = runs.iter().map(|(pause, _)| pause.as_millis()).collect();
        assert_eq!(ms, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(runs.iter().filter(|(_, first)| *first).count(), 1);
        backoff.accepted();
        assert_eq!(backoff.failed(), (FIRST_PAUSE, true));
    }
}
