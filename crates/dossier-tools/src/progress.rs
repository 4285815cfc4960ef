//! A minimal progress bar on stderr, drawn only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const WIDTH: usize = 30;
const REDRAW: Duration = Duration::from_millis(100);

pub struct Progress {
    label: String,
    enabled: bool,
    start: Instant,
    last_draw: Option<Instant>,
}

impl Progress {
    /// A bar that draws only if stderr is a terminal.
    pub fn stderr(label: &str) -> Progress {
        Progress::new(label, std::io::stderr().is_terminal())
    }

    pub fn new(label: &str, enabled: bool) -> Progress {
        Progress {
            label: label.to_owned(),
            enabled,
            start: Instant::now(),
            last_draw: None,
        }
    }

    /// Redraws (at most every 100 ms, and always on completion).
    pub fn update(&mut self, done: i64, total: i64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let due = self.last_draw.is_none_or(|t| now - t >= REDRAW) || done >= total;
        if !due {
            return;
        }
        self.last_draw = Some(now);
        let line = render(&self.label, done, total, now - self.start);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    /// Removes the bar so that following output starts on a clean line.
    pub fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
        self.last_draw = None;
    }
}

/// `label [#######.......]  45.0%  1234/2742  5678 ev/s  ETA 3s`
pub fn render(label: &str, done: i64, total: i64, elapsed: Duration) -> String {
    let total = total.max(done).max(0);
    let frac = if total == 0 {
        1.0
    } else {
        done.max(0) as f64 / total as f64
    };
    let filled = ((frac * WIDTH as f64).round() as usize).min(WIDTH);
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = if rate > 0.0 && done < total {
        format!("  ETA {:.0}s", (total - done) as f64 / rate)
    } else {
        String::new()
    };
    format!(
        "{label} [{}{}] {:5.1}%  {done}/{total}  {rate:.0} ev/s{eta}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        frac * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let s = render("verify", 50, 200, Duration::from_secs(1));
        assert!(
            s.starts_with("verify [########......................]  25.0%  50/200  50 ev/s"),
            "{s}"
        );
        assert!(s.ends_with("ETA 3s"), "{s}");
        let s = render("verify", 0, 0, Duration::ZERO);
        assert!(s.contains("100.0%"), "{s}");
        assert!(!s.contains("ETA"));
    }
}
