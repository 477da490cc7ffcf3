//! What the person in front of the PC sees: plain sentences on the screen
//! (tty1) mirrored to the serial port, a spinner while a step runs, and on
//! failure a sentence they can read out over the phone plus the technical
//! detail. Every line also goes to an in-memory log that is uploaded to the
//! server.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RED: &str = "\x1b[1;31m";
const GREEN: &str = "\x1b[1;32m";
const YELLOW: &str = "\x1b[1;33m";
const RESET: &str = "\x1b[0m";
/// The Linux console's blinking cursor means nothing to the staff (and
/// makes every screenshot of the same screen differ): hidden on tty1.
const HIDE_CURSOR: &str = "\x1b[?25l";
const SHOW_CURSOR: &str = "\x1b[?25h";
/// Clears the whole screen and puts the cursor top left.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";
/// Clears from the cursor to the end of the line.
const CLEAR_EOL: &str = "\x1b[K";

/// Terminals the agent writes to. Cheap to clone: clones share outputs and log.
#[derive(Clone)]
pub struct Screen {
    inner: Arc<Inner>,
}

struct Inner {
    outputs: Mutex<Vec<File>>,
    /// Host runs (debug subcommands, tests) write to stderr instead.
    stderr: bool,
    log: Mutex<String>,
    started: Instant,
    /// Each finished step: its words and its start and end, in seconds
    /// since the kernel started (CLOCK_MONOTONIC, printk's own clock).
    steps: Mutex<Vec<(String, f64, f64)>>,
    /// When the screen (PID 1's first act) was made, on that clock.
    born: f64,
    /// The install phase under way (partition, download, ...) and its start.
    phase: Mutex<Option<(String, f64)>>,
    /// Lowest MemAvailable and highest swap in use seen, in KiB.
    memory: Mutex<Option<(u64, u64)>>,
    /// The first output is the PC's own screen (tty1), where a progress
    /// line is redrawn in place rather than repeated.
    vt: bool,
    /// A progress line is being redrawn on tty1 (the next line starts below it).
    progress_open: AtomicBool,
}

/// Terminal devices to mirror to, in order; `/dev/console` is only a fallback
/// because it is one of these already and would print every line twice.
const TERMINALS: &[&str] = &["/dev/tty1", "/dev/ttyS0"];

impl Screen {
    /// Opens the PC's screen and first serial port (when present).
    pub fn open_console() -> Screen {
        let mut outputs: Vec<File> = Vec::new();
        let mut vt = false;
        for (i, path) in TERMINALS.iter().enumerate() {
            if let Some(f) = open_tty(path) {
                vt |= i == 0;
                outputs.push(f);
            }
        }
        if outputs.is_empty() {
            outputs.extend(open_tty("/dev/console"));
        }
        let screen = Screen::with(outputs, false, vt);
        if vt {
            screen.write_first(HIDE_CURSOR);
        }
        screen
    }

    /// A screen that writes to stderr, for runs on a host.
    pub fn stderr() -> Screen {
        Screen::with(Vec::new(), true, false)
    }

    fn with(outputs: Vec<File>, stderr: bool, vt: bool) -> Screen {
        Screen {
            inner: Arc::new(Inner {
                outputs: Mutex::new(outputs),
                stderr,
                log: Mutex::new(String::new()),
                started: Instant::now(),
                steps: Mutex::new(Vec::new()),
                born: since_boot(),
                phase: Mutex::new(None),
                memory: Mutex::new(None),
                vt,
                progress_open: AtomicBool::new(false),
            }),
        }
    }

    fn write_raw(&self, text: &str) {
        if self.inner.stderr {
            let _ = std::io::stderr().write_all(text.as_bytes());
            return;
        }
        if self.inner.progress_open.swap(false, Ordering::Relaxed) {
            self.write_first("\r\n");
        }
        let mut outs = self.inner.outputs.lock().unwrap_or_else(|e| e.into_inner());
        // A port that fails (a serial line without a UART) is dropped.
        outs.retain_mut(|f| f.write_all(text.as_bytes()).is_ok());
    }

    /// Only to the PC's screen (the first terminal): spinner frames would
    /// flood a serial log.
    /// `text` as a line on every console but the first (the serial line
    /// beside the staff's screen), where the technical wording goes.
    fn write_rest(&self, text: &str) {
        let mut outs = self.inner.outputs.lock().unwrap_or_else(|e| e.into_inner());
        for f in outs.iter_mut().skip(1) {
            let _ = f.write_all(format!("{text}\r\n").as_bytes());
        }
    }

    fn write_first(&self, text: &str) {
        let mut outs = self.inner.outputs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = outs.first_mut() {
            let _ = f.write_all(text.as_bytes());
        }
    }

    fn log(&self, text: &str) {
        let t = self.inner.started.elapsed().as_secs_f32();
        let mut log = self.inner.log.lock().unwrap_or_else(|e| e.into_inner());
        for line in text.lines() {
            log.push_str(&format!("[{t:8.2}] {line}\n"));
        }
    }

    /// One line on every terminal and in the log.
    pub fn line(&self, text: &str) {
        self.log(text);
        self.write_raw(&format!("{text}\r\n"));
    }

    /// A long step's progress. On the PC's screen one line with a bar,
    /// redrawn in place, in the staff's words (`shown`); on the serial port
    /// and in the log a line per change (`logged (NN%)`, the event's English
    /// wording), which is what tests and volunteers grep.
    pub fn progress(&self, shown: &str, logged: &str, percent: u8) {
        let line = format!("{logged} ({percent}%)");
        self.log(&line);
        if self.inner.stderr || !self.inner.vt {
            self.write_raw(&format!("{line}\r\n"));
            return;
        }
        self.write_first(&format!("\r{shown} {}{CLEAR_EOL}", progress_bar(percent)));
        self.inner.progress_open.store(percent < 100, Ordering::Relaxed);
        if percent >= 100 {
            self.write_first("\r\n");
        }
        self.write_rest(&line);
    }

    /// A line in the staff's words on the PC's screen and the event's
    /// English wording on the serial port and in the log (as [`Self::progress`]).
    pub fn event_line(&self, shown: &str, logged: &str) {
        if self.inner.stderr || !self.inner.vt || shown == logged {
            self.line(logged);
            return;
        }
        self.log(logged);
        if self.inner.progress_open.swap(false, Ordering::Relaxed) {
            self.write_first("\r\n");
        }
        self.write_first(&format!("{shown}\r\n"));
        self.write_rest(logged);
    }

    /// Starts a clean page on the PC's screen (PID 1 does it once: the
    /// kernel's boot messages are of no use to the staff).
    pub fn clear(&self) {
        if self.inner.vt {
            self.write_first(CLEAR_SCREEN);
        }
    }

    /// Shows tty1's cursor again (before handing the console to a shell).
    pub fn show_cursor(&self) {
        if self.inner.vt {
            self.write_first(SHOW_CURSOR);
        }
    }

    /// A line only in the log (technical detail nobody needs on screen).
    pub fn note(&self, text: &str) {
        self.log(text);
    }

    /// A warning in red (e.g. "plans are not checked").
    pub fn warn(&self, text: &str) {
        self.log(&format!("WARNING: {text}"));
        self.write_raw(&format!("{RED}{text}{RESET}\r\n"));
    }

    /// Starts a step shown as "<words> |" with a spinner until it ends.
    pub fn step(&self, words: &str) -> Step {
        self.log(words);
        let running = Arc::new(AtomicBool::new(true));
        let screen = self.clone();
        let flag = running.clone();
        let text = words.to_string();
        let spinner = std::thread::spawn(move || {
            let frames = ['|', '/', '-', '\\'];
            let mut i = 0;
            while flag.load(Ordering::Relaxed) {
                if !screen.inner.stderr {
                    screen.write_first(&format!("\r{text} {}", frames[i % 4]));
                }
                i += 1;
                // Woken by `Step::stop`: a step ends when its work does, not
                // up to a frame later (four steps stand before the first
                // request to the server).
                std::thread::park_timeout(Duration::from_millis(250));
            }
        });
        if self.inner.stderr {
            self.write_raw(&format!("{words}\n"));
        }
        Step {
            screen: self.clone(),
            words: words.to_string(),
            running,
            spinner: Some(spinner),
            began: since_boot(),
        }
    }

    /// A failure: one sentence for the person at the PC, then the detail.
    /// The detail is English, so its label is too (after the staff's own
    /// word for it): the volunteer on the phone and the tests read it.
    pub fn failure(&self, plain: &str, detail: &str) {
        self.log(&format!("FAILED: {plain}\ndetail: {detail}"));
        let label = match crate::i18n::current() {
            crate::i18n::Lang::En => String::new(),
            _ => format!("{} / ", crate::i18n::t("technical-detail")),
        };
        self.write_raw(&format!(
            "\r\n{RED}{plain}{RESET}\r\n{label}Technical detail: {}\r\n",
            detail.replace('\n', "\r\n")
        ));
    }

    /// Everything logged so far.
    pub fn log_text(&self) -> String {
        self.inner.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running step; ends as done or failed, or as "stopped" when dropped.
pub struct Step {
    screen: Screen,
    words: String,
    running: Arc<AtomicBool>,
    spinner: Option<std::thread::JoinHandle<()>>,
    began: f64,
}

impl Step {
    fn stop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(h) = self.spinner.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        let mut steps = self.screen.inner.steps.lock().unwrap_or_else(|e| e.into_inner());
        steps.push((self.words.clone(), self.began, since_boot()));
    }

    /// Ends the step with a green "done" (or the given short result).
    pub fn done(mut self, result: &str) {
        self.stop();
        self.screen.log(&format!("{} {result}", self.words));
        self.screen.write_raw(&format!("\r{} {GREEN}{result}{RESET}\r\n", self.words));
    }

    /// Ends the step in yellow: it did not work but the agent goes on.
    pub fn skipped(mut self, why: &str) {
        self.stop();
        self.screen.log(&format!("{} {why}", self.words));
        self.screen.write_raw(&format!("\r{} {YELLOW}{why}{RESET}\r\n", self.words));
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if self.spinner.is_some() {
            self.stop();
            self.screen.write_raw("\r\n");
        }
    }
}

impl Screen {
    /// Where the time went so far, on one line for the log and the serial
    /// console (`make bench` reads it): the kernel and initramfs up to this
    /// agent's start, then each step, then the waits between steps (menus,
    /// countdowns, retries), all from the kernel's monotonic clock.
    pub fn timeline(&self) -> String {
        let now = since_boot();
        let mut steps = self.inner.steps.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((name, began)) =
            self.inner.phase.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
        {
            steps.push((name.clone(), *began, now));
        }
        let mut line = timeline_line(self.inner.born, &steps, now);
        if let Some((avail, swap)) = *self.inner.memory.lock().unwrap_or_else(|e| e.into_inner()) {
            let mib = |k: u64| k / 1024;
            line.push_str(&format!(
                " | lowest MemAvailable {} MiB, most swap used {} MiB",
                mib(avail),
                mib(swap)
            ));
        }
        line
    }

    /// An install phase starts (a new name ends the one before): it enters
    /// the timeline like a step. Memory is sampled at each call.
    pub fn phase(&self, name: &str) {
        self.sample_memory();
        let now = since_boot();
        let mut open = self.inner.phase.lock().unwrap_or_else(|e| e.into_inner());
        if open.as_ref().is_some_and(|(n, _)| n == name) {
            return;
        }
        if let Some((n, began)) = open.take() {
            self.inner.steps.lock().unwrap_or_else(|e| e.into_inner()).push((n, began, now));
        }
        *open = Some((name.to_string(), now));
    }

    /// Notes the lowest MemAvailable and the most swap in use so far.
    fn sample_memory(&self) {
        let Ok(text) = std::fs::read_to_string("/proc/meminfo") else { return };
        let (Some(avail), Some(used)) =
            (crate::procfs::kib(&text, "MemAvailable"), crate::procfs::swap_used_kib(&text))
        else {
            return;
        };
        let mut m = self.inner.memory.lock().unwrap_or_else(|e| e.into_inner());
        *m = Some(match *m {
            Some((a, s)) => (a.min(avail), s.max(used)),
            None => (avail, used),
        });
    }

    /// [`Screen::timeline`] in the log and on the consoles after the first
    /// (the serial line): the staff's screen has no use for it.
    pub fn note_timeline(&self) {
        let line = self.timeline();
        self.log(&line);
        self.write_rest(&line);
    }
}

/// Seconds since the kernel started: CLOCK_MONOTONIC, the clock of the
/// kernel's `[   1.234567]` lines.
fn since_boot() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// `timeline: kernel 3.10 s | Finding hardware 1.20 s | ... | other 0.40 s | total 7.80 s`.
fn timeline_line(born: f64, steps: &[(String, f64, f64)], now: f64) -> String {
    let mut out = format!("timeline: kernel {born:.2} s");
    let mut in_steps = 0.0;
    for (words, a, b) in steps {
        out.push_str(&format!(" | {words} {:.2} s", b - a));
        in_steps += b - a;
    }
    let other = (now - born - in_steps).max(0.0);
    out.push_str(&format!(" | other {other:.2} s | total {now:.2} s"));
    out
}

/// `[##########----------]  50 %`: 20 cells, one per 5 %.
fn progress_bar(percent: u8) -> String {
    let p = usize::from(percent.min(100));
    format!("[{}{}] {p:3} %", "#".repeat(p / 5), "-".repeat(20 - p / 5))
}

fn open_tty(path: &str) -> Option<File> {
    let mut f = OpenOptions::new().write(true).open(path).ok()?;
    // Writing nothing fails on a serial device with no UART behind it.
    f.write_all(b"").ok()?;
    Some(f)
}

/// Waits for a line typed on the screen's keyboard or the serial console and
/// returns its first character, lowercased (`'\n'` for a bare Enter); `None`
/// when no terminal can be read. Terminals are opened only while asking, so
/// a shell started afterwards gets every keystroke.
pub fn read_choice() -> Option<char> {
    let files: Vec<File> = TERMINALS.iter().filter_map(|p| File::open(p).ok()).collect();
    if files.is_empty() {
        return None;
    }
    let ready = crate::sys::poll_readable(&files)?;
    let mut buf = [0u8; 128];
    match (&files[ready]).read(&mut buf) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            let line = String::from_utf8_lossy(&buf[..n]);
            Some(line.trim().chars().next().unwrap_or('\n').to_ascii_lowercase())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{progress_bar, timeline_line, Screen};

    #[test]
    fn the_timeline_adds_up_to_the_time_since_boot() {
        let steps = [("hardware".to_string(), 3.5, 4.75), ("network".to_string(), 5.0, 7.0)];
        assert_eq!(
            timeline_line(3.25, &steps, 8.0),
            "timeline: kernel 3.25 s | hardware 1.25 s | network 2.00 s | other 1.50 s | total 8.00 s"
        );
    }

    #[test]
    fn finished_steps_enter_the_timeline_in_order() {
        let s = Screen::stderr();
        s.step("one").done("ok");
        s.step("two").skipped("no");
        let t = s.timeline();
        let (one, two) = (t.find("| one ").unwrap(), t.find("| two ").unwrap());
        assert!(t.starts_with("timeline: kernel ") && one < two && t.contains("| total "), "{t}");
    }

    #[test]
    fn progress_bar_fills_one_cell_per_five_percent() {
        assert_eq!(progress_bar(0), "[--------------------]   0 %");
        assert_eq!(progress_bar(52), "[##########----------]  52 %");
        assert_eq!(progress_bar(100), "[####################] 100 %");
        assert_eq!(progress_bar(250), progress_bar(100));
    }
}
