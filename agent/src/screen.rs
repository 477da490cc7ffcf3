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
}

/// Terminal devices to mirror to, in order; `/dev/console` is only a fallback
/// because it is one of these already and would print every line twice.
const TERMINALS: &[&str] = &["/dev/tty1", "/dev/ttyS0"];

impl Screen {
    /// Opens the PC's screen and first serial port (when present).
    pub fn open_console() -> Screen {
        let mut outputs: Vec<File> = TERMINALS.iter().filter_map(|p| open_tty(p)).collect();
        if outputs.is_empty() {
            outputs.extend(open_tty("/dev/console"));
        }
        Screen::with(outputs, false)
    }

    /// A screen that writes to stderr, for runs on a host.
    pub fn stderr() -> Screen {
        Screen::with(Vec::new(), true)
    }

    fn with(outputs: Vec<File>, stderr: bool) -> Screen {
        Screen {
            inner: Arc::new(Inner {
                outputs: Mutex::new(outputs),
                stderr,
                log: Mutex::new(String::new()),
                started: Instant::now(),
            }),
        }
    }

    fn write_raw(&self, text: &str) {
        if self.inner.stderr {
            let _ = std::io::stderr().write_all(text.as_bytes());
            return;
        }
        let mut outs = self.inner.outputs.lock().unwrap_or_else(|e| e.into_inner());
        // A port that fails (a serial line without a UART) is dropped.
        outs.retain_mut(|f| f.write_all(text.as_bytes()).is_ok());
    }

    /// Only to the PC's screen (the first terminal): spinner frames would
    /// flood a serial log.
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
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        if self.inner.stderr {
            self.write_raw(&format!("{words}\n"));
        }
        Step { screen: self.clone(), words: words.to_string(), running, spinner: Some(spinner) }
    }

    /// A failure: one sentence for the person at the PC, then the detail.
    pub fn failure(&self, plain: &str, detail: &str) {
        self.log(&format!("FAILED: {plain}\ndetail: {detail}"));
        self.write_raw(&format!(
            "\r\n{RED}{plain}{RESET}\r\nTechnical detail: {}\r\n",
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
}

impl Step {
    fn stop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(h) = self.spinner.take() {
            let _ = h.join();
        }
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
