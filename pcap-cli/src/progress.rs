//! The progress line of `pcap replay -w FILE` (and `listen -w FILE`) on a terminal: bytes,
//! packets and rate, rewritten in place at most five times a second, then a last line once
//! the savefile is complete. When stderr is not a terminal nothing is written, so that
//! scripts and logs see only real messages.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use pcap_core::parse::human_size;

/// Shortest time between two redraws.
const EVERY: Duration = Duration::from_millis(200);

/// Counts what is written to a savefile and shows it on stderr when that is a terminal.
pub struct Progress {
    meter: Option<Meter>,
}

impl Progress {
    /// A progress line for writing `target`, shown only if stderr is a terminal.
    pub fn on_stderr(target: &str) -> Progress {
        let meter = io::stderr()
            .is_terminal()
            .then(|| Meter::new(Instant::now(), target));
        Progress { meter }
    }

    /// No progress line.
    pub fn silent() -> Progress {
        Progress { meter: None }
    }

    /// Counts `packets` packets taking `bytes` bytes of the savefile (file header: 0 packets).
    pub fn add(&mut self, packets: u64, bytes: u64) {
        if let Some(m) = &mut self.meter {
            if let Some(text) = m.add(Instant::now(), packets, bytes) {
                show(&text);
            }
        }
    }

    /// Ends the line being shown, so that another message on stderr gets a line of its own.
    pub fn interrupt(&mut self) {
        if let Some(text) = self.meter.as_mut().and_then(Meter::interrupt) {
            show(&text);
        }
    }

    /// Shows the last line: what was written, in how long.
    pub fn finish(mut self) {
        if let Some(mut m) = self.meter.take() {
            show(&m.finish(Instant::now()));
        }
    }
}

impl Drop for Progress {
    /// A failure must not be told on the end of a progress line.
    fn drop(&mut self) {
        self.interrupt();
    }
}

fn show(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// The counting and the text, apart from the clock and the terminal.
#[derive(Debug)]
struct Meter {
    start: Instant,
    last_draw: Instant,
    bytes: u64,
    packets: u64,
    /// Characters of the line on screen, which a shorter line must blank out; 0 for none.
    shown: usize,
    target: String,
}

impl Meter {
    fn new(start: Instant, target: &str) -> Meter {
        Meter {
            start,
            last_draw: start,
            bytes: 0,
            packets: 0,
            shown: 0,
            target: target.to_owned(),
        }
    }

    /// Counts a batch; returns what to write when the line is due to be redrawn. The
    /// first line waits one interval, so that a quick replay shows only the last one.
    fn add(&mut self, now: Instant, packets: u64, bytes: u64) -> Option<String> {
        self.packets += packets;
        self.bytes += bytes;
        if now.saturating_duration_since(self.last_draw) < EVERY {
            return None;
        }
        self.last_draw = now;
        let line = format!(
            "pcap: {}, {}, {}",
            human_size(self.bytes),
            count_packets(self.packets),
            self.rate(now)
        );
        Some(self.redraw(line))
    }

    /// Bytes per second since the start.
    fn rate(&self, now: Instant) -> String {
        let secs = now.saturating_duration_since(self.start).as_secs_f64();
        let rate = if secs > 0.0 {
            self.bytes as f64 / secs
        } else {
            0.0
        };
        format!("{}/s", human_size(rate as u64))
    }

    /// `line` over the one on screen, blanking what is left of a longer one.
    fn redraw(&mut self, line: String) -> String {
        let len = line.chars().count();
        let pad = self.shown.saturating_sub(len);
        self.shown = len;
        format!("\r{line}{}", " ".repeat(pad))
    }

    fn interrupt(&mut self) -> Option<String> {
        (std::mem::take(&mut self.shown) > 0).then(|| "\n".to_owned())
    }

    fn finish(&mut self, now: Instant) -> String {
        let secs = now.saturating_duration_since(self.start).as_secs_f64();
        let line = format!(
            "pcap: wrote {}, {} to {} in {secs:.1} s ({})",
            human_size(self.bytes),
            count_packets(self.packets),
            self.target,
            self.rate(now)
        );
        let mut text = self.redraw(line);
        text.push('\n');
        self.shown = 0;
        text
    }
}

/// `1 packet`, `2 packets`.
fn count_packets(n: u64) -> String {
    match n {
        1 => "1 packet".to_owned(),
        n => format!("{n} packets"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn redraws_at_most_five_times_a_second() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0, "out.pcap");
        assert_eq!(m.add(t0, 0, 24), None, "the file header alone is not shown");
        assert_eq!(m.add(t0 + 100 * MS, 10, 1000), None, "too soon");
        let drawn = (1..=100)
            .filter_map(|i| m.add(t0 + 200 * MS + i * 10 * MS, 1, 100))
            .count();
        // 1 s of batches every 10 ms: one line per 200 ms.
        assert_eq!(drawn, 5);
        assert_eq!((m.packets, m.bytes), (110, 11_024));
    }

    #[test]
    fn lines_say_bytes_packets_and_rate_and_overwrite_in_place() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0, "out.pcap");
        let line = m.add(t0 + 2000 * MS, 1000, 4 << 20).unwrap();
        assert_eq!(line, "\rpcap: 4.0 MiB, 1000 packets, 2.0 MiB/s");
        // A shorter line blanks out the end of the longer one.
        m.bytes = 0;
        m.packets = 0;
        let line = m.add(t0 + 4000 * MS, 1, 10).unwrap();
        assert_eq!(line, "\rpcap: 10 B, 1 packet, 2 B/s           ");
        assert_eq!(m.shown, "pcap: 10 B, 1 packet, 2 B/s".len());
    }

    #[test]
    fn the_last_line_ends_with_a_newline() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0, "web.pcap");
        m.add(t0, 1000, 154_024);
        assert_eq!(
            m.finish(t0 + 500 * MS),
            "\rpcap: wrote 150.4 KiB, 1000 packets to web.pcap in 0.5 s (300.8 KiB/s)\n"
        );
        assert_eq!(m.interrupt(), None, "nothing left on the line");
    }

    #[test]
    fn an_interruption_ends_the_line_once() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0, "x");
        assert_eq!(m.interrupt(), None);
        m.add(t0 + 300 * MS, 1, 100).unwrap();
        assert_eq!(m.interrupt().as_deref(), Some("\n"));
        assert_eq!(m.interrupt(), None);
    }

    #[test]
    fn no_time_means_no_rate_rather_than_infinity() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0, "x");
        m.add(t0, 1, 100);
        assert_eq!(m.rate(t0), "0 B/s");
    }
}
