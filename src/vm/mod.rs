//! Boot an ISO (or disks) in qemu: the harness every VM test uses, and the
//! `lazare vm` command that lets a volunteer try a CD before burning it.
//!
//! Rules the harness enforces (see `/work/shared/FINDINGS.md`): TCG only
//! (`-enable-kvm` hangs on the build machines), user networking with
//! `restrict=on` so the guest can reach nothing but the optional guestfwd to
//! 127.0.0.1, and every qemu wrapped in coreutils `timeout` so a test that
//! dies without running `Drop` still cannot leave a VM behind for long.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod command;
mod qemu_args;
mod screens;

pub use command::{run, DiskIfArg, VmArgs};
use qemu_args::qemu_args;
pub use screens::{png_size, ScreenRecorder};

/// What the firmware boots first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootFrom {
    /// The ISO as a CD-ROM (El Torito).
    Cdrom,
    /// The ISO as a raw hard disk, like a `dd`-written stick (isohybrid MBR/GPT).
    Disk,
    /// The ISO as a USB mass-storage stick on an xHCI controller.
    Usb,
}

/// How a disk is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskInterface {
    Ide,
    Sata,
    Virtio,
    /// virtio-scsi.
    Scsi,
}

/// A target disk for the guest. Writes go to the file (use a scratch qcow2).
#[derive(Clone, Debug)]
pub struct DiskSpec {
    pub path: PathBuf,
    pub interface: DiskInterface,
    /// qemu format name: "qcow2" or "raw".
    pub format: String,
}

impl DiskSpec {
    /// A disk whose format is guessed from its extension (`.qcow2` or raw).
    pub fn new(path: impl Into<PathBuf>, interface: DiskInterface) -> Self {
        let path = path.into();
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("qcow2") => "qcow2",
            _ => "raw",
        };
        DiskSpec { path, interface, format: format.into() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// i440FX + PIIX: an old PC with IDE.
    Pc,
    /// Q35 + ICH9 (AHCI): a newer PC.
    Q35,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS.
    Bios,
    /// OVMF without Secure Boot.
    Uefi,
    /// OVMF with Secure Boot enforced and Microsoft keys enrolled (forces Q35 + SMM).
    UefiSecureBoot,
}

/// Everything that describes one VM run.
#[derive(Clone, Debug)]
pub struct VmSpec {
    pub iso: Option<PathBuf>,
    pub boot_from: BootFrom,
    pub disks: Vec<DiskSpec>,
    pub memory_mb: u32,
    pub machine: Machine,
    pub firmware: Firmware,
    /// qemu NIC device ("e1000", "rtl8139", "virtio-net-pci", "pcnet", ...), or
    /// "none" for a PC without a network card.
    pub nic_model: String,
    /// Guest 10.0.2.100:PORT is forwarded to 127.0.0.1:PORT (one socat per connection).
    pub guestfwd_port: Option<u16>,
    /// Everything the guest writes on its first serial port is appended here.
    pub serial_log: PathBuf,
    /// Exit instead of rebooting (the agent reboots at the end of an install).
    pub no_reboot: bool,
    /// Hard limit after which `timeout` kills qemu even if our process died.
    pub max_runtime: Duration,
    pub extra_args: Vec<String>,
    /// Run qemu inside this network namespace (`ip netns exec`), where the
    /// tap devices of `extra_args` live (tests/e2e_room.rs: a room's LAN).
    pub netns: Option<String>,
}

impl VmSpec {
    /// A 512 MB SeaBIOS PC with an e1000 NIC booting `iso` as a CD.
    pub fn new(iso: Option<PathBuf>, serial_log: impl Into<PathBuf>) -> Self {
        VmSpec {
            iso,
            boot_from: BootFrom::Cdrom,
            disks: Vec::new(),
            memory_mb: 512,
            machine: Machine::Pc,
            firmware: Firmware::Bios,
            nic_model: "e1000".into(),
            guestfwd_port: None,
            serial_log: serial_log.into(),
            no_reboot: true,
            max_runtime: Duration::from_secs(900),
            extra_args: Vec::new(),
            netns: None,
        }
    }
}

/// Errors of the VM harness.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VmError {
    #[error("starting qemu: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("firmware file {0} is missing (install the ovmf package)")]
    MissingFirmware(PathBuf),
    #[error("{0} does not exist")]
    MissingFile(PathBuf),
    #[error("serial console: {0}")]
    SerialSocket(String),
    #[error("timed out after {secs} s waiting for {pattern:?} on the serial console; last output:\n{tail}")]
    Timeout { pattern: String, secs: u64, tail: String },
    #[error("qemu exited ({status}) before {pattern:?} appeared; last output:\n{tail}")]
    Exited { status: String, pattern: String, tail: String },
    #[error("qemu monitor: {0}")]
    Monitor(#[source] std::io::Error),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("invalid regex {0:?}")]
    Regex(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("screenshot: {0}")]
    Screenshot(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VmError {
    let context = context.into();
    move |source| VmError::Io { context, source }
}

/// What `wait_for` looks for: a plain substring or a regex.
#[derive(Clone, Debug)]
pub enum Pattern {
    Text(String),
    Regex(regex::Regex),
}

impl Pattern {
    /// A regex pattern; errors name the bad expression.
    pub fn regex(re: &str) -> Result<Self, VmError> {
        regex::Regex::new(re).map(Pattern::Regex).map_err(|_| VmError::Regex(re.into()))
    }
    fn find(&self, hay: &str) -> Option<(usize, usize)> {
        match self {
            Pattern::Text(t) => hay.find(t.as_str()).map(|i| (i, i + t.len())),
            Pattern::Regex(r) => r.find(hay).map(|m| (m.start(), m.end())),
        }
    }
    fn describe(&self) -> String {
        match self {
            Pattern::Text(t) => t.clone(),
            Pattern::Regex(r) => format!("/{}/", r.as_str()),
        }
    }
}

impl From<&str> for Pattern {
    fn from(s: &str) -> Self {
        Pattern::Text(s.into())
    }
}
impl From<String> for Pattern {
    fn from(s: String) -> Self {
        Pattern::Text(s)
    }
}
impl From<regex::Regex> for Pattern {
    fn from(r: regex::Regex) -> Self {
        Pattern::Regex(r)
    }
}

/// A running qemu. Dropping it kills qemu.
pub struct Vm {
    child: Child,
    qemu_pid_file: PathBuf,
    monitor_path: PathBuf,
    /// The guest's serial output, copied here from qemu's pipe chardev.
    serial_log: PathBuf,
    /// Where this run's output starts in `serial_log` (it may be appended to).
    log_start: u64,
    /// Our end of the FIFO qemu reads serial input from.
    serial_in: std::fs::File,
    /// Tells the thread copying serial output to the log to finish.
    stop: Arc<AtomicBool>,
    /// `wait_for` searches from here; moved only by `mark()`.
    cursor: usize,
    stderr_path: PathBuf,
    // Held for its Drop: the monitor socket, FIFO, OVMF vars copy and socat script live here.
    _dir: tempfile::TempDir,
}

impl Vm {
    /// Start qemu as described by `spec`.
    pub fn start(spec: &VmSpec) -> Result<Vm, VmError> {
        let dir = tempfile::Builder::new()
            .prefix("lazare-vm-")
            .tempdir()
            .map_err(io_err("creating a temp dir"))?;
        let (serial_in, stop) = serial_pipes(dir.path(), &spec.serial_log)?;
        let log_start = std::fs::metadata(&spec.serial_log).map(|m| m.len()).unwrap_or(0);
        let args = qemu_args(spec, dir.path())?;
        let stderr_path = dir.path().join("qemu.stderr");
        let stderr = std::fs::File::create(&stderr_path).map_err(io_err("creating qemu.stderr"))?;
        let mut cmd = Command::new("timeout");
        // --foreground: qemu stays in our process group so Ctrl-C in `lazare vm` reaches it.
        cmd.args(["--foreground", "--kill-after=5"])
            .arg(format!("{}s", spec.max_runtime.as_secs().max(1)));
        if let Some(ns) = &spec.netns {
            // `ip netns exec` execs qemu: the pid stays qemu's.
            cmd.args(["ip", "netns", "exec", ns]);
        }
        cmd.arg("qemu-system-x86_64")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = cmd.spawn().map_err(VmError::Spawn)?;
        Ok(Vm {
            child,
            qemu_pid_file: dir.path().join("qemu.pid"),
            monitor_path: dir.path().join("monitor.sock"),
            serial_log: spec.serial_log.clone(),
            log_start,
            serial_in,
            stop,
            cursor: 0,
            stderr_path,
            _dir: dir,
        })
    }

    /// This run's raw serial bytes from `from` on.
    fn raw_output(&self, from: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&self.serial_log) {
            use std::io::Seek;
            if f.seek(std::io::SeekFrom::Start(self.log_start + from)).is_ok() {
                let _ = f.read_to_end(&mut buf);
            }
        }
        buf
    }

    /// Serial output so far (`\r` removed).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.raw_output(0)).replace('\r', "")
    }

    /// From now on `wait_for` only looks at output that arrives after this call.
    pub fn mark(&mut self) {
        self.cursor = self.output().len();
    }

    /// Wait until a complete serial line (after the last `mark()`) matches
    /// `pattern`; return that line. Fails early if qemu exits.
    pub fn wait_for(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<String, VmError> {
        let pattern = pattern.into();
        self.poll(&pattern, timeout, |text, p| {
            let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            complete.lines().find(|l| p.find(l).is_some()).map(str::to_owned)
        })
    }

    /// Like `wait_for` but also matches an unfinished last line (a prompt);
    /// returns the matched text itself.
    pub fn wait_for_text(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<String, VmError> {
        let pattern = pattern.into();
        self.poll(&pattern, timeout, |text, p| p.find(text).map(|(a, b)| text[a..b].to_owned()))
    }

    fn poll(
        &mut self,
        pattern: &Pattern,
        timeout: Duration,
        matcher: impl Fn(&str, &Pattern) -> Option<String>,
    ) -> Result<String, VmError> {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.child.try_wait().map_err(io_err("waiting for qemu"))?;
            if exited.is_some() {
                // Let the reader thread drain what qemu wrote last.
                std::thread::sleep(Duration::from_millis(200));
            }
            let text = self.output();
            let tail = text.get(self.cursor..).unwrap_or("");
            if let Some(found) = matcher(tail, pattern) {
                return Ok(found);
            }
            if let Some(status) = exited {
                return Err(VmError::Exited {
                    status: status.to_string(),
                    pattern: pattern.describe(),
                    tail: last_lines(&format!("{text}{}", self.stderr()), 30),
                });
            }
            if Instant::now() > deadline {
                return Err(VmError::Timeout {
                    pattern: pattern.describe(),
                    secs: timeout.as_secs(),
                    tail: last_lines(&text, 30),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Type `text` on the guest's serial console.
    pub fn send(&mut self, text: &str) -> Result<(), VmError> {
        self.serial_in.write_all(text.as_bytes()).map_err(io_err("writing to the serial console"))
    }

    /// Wait for qemu to exit (e.g. the guest powered off, or rebooted with `no_reboot`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, VmError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().map_err(io_err("waiting for qemu"))? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                return Err(VmError::Timeout {
                    pattern: "qemu exit".into(),
                    secs: timeout.as_secs(),
                    tail: last_lines(&self.output(), 30),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Copy the serial output to `out` as it arrives, until qemu exits;
    /// `screens` (if any) gets a chance to photograph the display meanwhile.
    pub fn follow(
        &mut self,
        out: &mut dyn Write,
        mut screens: Option<&mut ScreenRecorder>,
    ) -> Result<ExitStatus, VmError> {
        let mut shown = 0u64;
        loop {
            let exited = self.child.try_wait().map_err(io_err("waiting for qemu"))?;
            if let (Some(rec), None) = (screens.as_deref_mut(), exited) {
                // The monitor may close under us as the guest powers off: a
                // missed picture is not worth stopping the VM's output for.
                if let Err(e) = rec.tick(self) {
                    eprintln!("lazare vm: {e}");
                }
            }
            let new = self.raw_output(shown);
            if !new.is_empty() {
                shown += new.len() as u64;
                out.write_all(&new).and_then(|_| out.flush()).map_err(io_err("writing output"))?;
            }
            if let Some(st) = exited {
                return Ok(st);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run one human monitor command (e.g. `set_link n0 off`) and return its output.
    pub fn monitor(&self, command: &str) -> Result<String, VmError> {
        let mut s = UnixStream::connect(&self.monitor_path).map_err(VmError::Monitor)?;
        s.set_read_timeout(Some(Duration::from_secs(30))).map_err(VmError::Monitor)?;
        let mut r = BufReader::new(s.try_clone().map_err(VmError::Monitor)?);
        read_until_prompt(&mut r)?;
        s.write_all(format!("{command}\n").as_bytes()).map_err(VmError::Monitor)?;
        let out = read_until_prompt(&mut r)?;
        // The monitor echoes the command (with terminal escapes) on the first line.
        Ok(out.lines().skip(1).collect::<Vec<_>>().join("\n"))
    }

    /// qemu's own PID (not the `timeout` wrapper's).
    pub fn qemu_pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.qemu_pid_file).ok()?.trim().parse().ok()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(pid) = self.qemu_pid().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        // `timeout` reaps qemu and exits by itself; kill it only if it lingers.
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// qemu's `pipe` chardev writes to `serial.out` and reads `serial.in` in
/// `dir`. A unix socket chardev lost characters when our reader was slow:
/// every 1-byte write costs a whole socket buffer slot, and after a few
/// EAGAIN retries qemu's UART drops bytes. A 1 MiB pipe holds a whole boot
/// log, and a thread copies it to `log`.
fn serial_pipes(dir: &Path, log: &Path) -> Result<(std::fs::File, Arc<AtomicBool>), VmError> {
    use rustix::fs::{Mode, OFlags};
    let open_fifo = |name: &str| -> Result<std::fs::File, VmError> {
        let path = dir.join(name);
        rustix::fs::mkfifoat(rustix::fs::CWD, &path, Mode::from_raw_mode(0o600))
            .map_err(|e| io_err(format!("mkfifo {}", path.display()))(e.into()))?;
        // O_RDWR never blocks on a FIFO and keeps both ends open for qemu.
        let fd = rustix::fs::open(
            &path,
            OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(format!("opening {}", path.display()))(e.into()))?;
        Ok(std::fs::File::from(fd))
    };
    let input = open_fifo("serial.in")?;
    let mut output = open_fifo("serial.out")?;
    let _ = rustix::pipe::fcntl_setpipe_size(&output, 1 << 20);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(format!("opening {}", log.display())))?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let stopping = done.load(Ordering::Relaxed);
            match output.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = log.write_all(&buf[..n]);
                    continue;
                }
                _ if stopping => break,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    Ok((input, stop))
}

fn read_until_prompt(r: &mut impl BufRead) -> Result<String, VmError> {
    let mut out = Vec::new();
    while !out.ends_with(b"(qemu) ") {
        let mut byte = [0u8; 1];
        match r.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => out.push(byte[0]),
            Err(e) => return Err(VmError::Monitor(e)),
        }
    }
    Ok(String::from_utf8_lossy(&out).replace('\r', ""))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness itself, on the host kernel booted directly: serial capture,
    /// regex waits, the monitor, and Drop killing qemu.
    #[test]
    fn boots_host_kernel_and_sees_its_command_line() {
        let Some(kernel) = newest_host_kernel() else {
            panic!("no /boot/vmlinuz-* on this machine (install linux-image-amd64)");
        };
        let dir = tempfile::tempdir().unwrap();
        let mut spec = VmSpec::new(None, dir.path().join("serial.log"));
        spec.memory_mb = 256;
        spec.extra_args = vec![
            "-kernel".into(),
            kernel.display().to_string(),
            "-append".into(),
            "console=ttyS0 lazare.harness=probe no_timer_check panic=-1".into(),
        ];
        let mut vm = Vm::start(&spec).unwrap();
        let line = vm
            .wait_for(
                Pattern::regex(r"Command line: .*lazare\.harness").unwrap(),
                Duration::from_secs(180),
            )
            .unwrap();
        assert!(line.ends_with("lazare.harness=probe no_timer_check panic=-1"), "{line}");
        let info = vm.monitor("info status").unwrap();
        assert!(info.contains("running"), "{info}");
        let pid = vm.qemu_pid().expect("qemu pid file");
        let log = std::fs::read_to_string(&spec.serial_log).unwrap();
        assert!(log.contains("lazare.harness=probe"));
        drop(vm);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "qemu {pid} survived Drop");
    }

    fn newest_host_kernel() -> Option<PathBuf> {
        crate::build::newest_kernel(Path::new("/boot")).ok()
    }
}
