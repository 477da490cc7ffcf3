//! An image server on 127.0.0.1 for the install tests: the image at a URL,
//! its chunk index at the URL plus `.chunks`, and ways to misbehave.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use lazare_proto::{ChunkIndex, CHUNK_SIZE};

/// How the server misbehaves.
#[derive(Clone, Copy)]
pub enum Mode {
    Good,
    /// Closes the first response after this many body bytes.
    CutAt(usize),
    /// Cuts like CutAt, then answers Range requests with the whole file (200).
    CutNoRange(usize),
}

pub struct ImageServer {
    pub url: String,
    /// One `range=…` line per request for the image itself.
    pub requests: Arc<Mutex<Vec<String>>>,
}

/// Serves `body` at /images/test.tar and its own chunk index at
/// /images/test.tar.chunks.
pub fn serve(body: Vec<u8>, mode: Mode) -> ImageServer {
    let index = ChunkIndex::build(&body[..], CHUNK_SIZE).unwrap().index.to_bytes();
    serve_with_index(body, index, mode)
}

/// Serves `body` as the image and `index` as its chunk index (the index of
/// another image, when the test swaps the file on the server).
pub fn serve_with_index(body: Vec<u8>, index: Vec<u8>, mode: Mode) -> ImageServer {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/images/test.tar", l.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let n = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let _ = answer(s, &body, &index, mode, &n, &log);
        }
    });
    ImageServer { url, requests }
}

fn answer(
    mut s: TcpStream,
    body: &[u8],
    index: &[u8],
    mode: Mode,
    n: &AtomicUsize,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(s.try_clone()?);
    let mut range = None;
    let mut first = String::new();
    r.read_line(&mut first)?;
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Range: bytes=") {
            range = v.trim_end_matches('-').parse::<usize>().ok();
        }
    }
    if first.contains(".chunks ") {
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            index.len()
        )?;
        return s.write_all(index);
    }
    let i = n.fetch_add(1, Ordering::SeqCst);
    log.lock().unwrap().push(format!("range={range:?}"));
    let honour = !matches!(mode, Mode::CutNoRange(_));
    let from = if honour { range.unwrap_or(0) } else { 0 };
    let part = &body[from..];
    let status = if from > 0 { "206 Partial Content" } else { "200 OK" };
    write!(s, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", part.len())?;
    let cut = match mode {
        Mode::CutAt(n) | Mode::CutNoRange(n) if i == 0 => n,
        _ => part.len(),
    };
    s.write_all(&part[..cut])?;
    s.flush()?;
    // Dropping the socket closes it: the client sees a short body.
    Ok(())
}

/// A tar.zst of regular files (path, mode, contents) owned by root.
pub fn tar_zst(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, path, *data).unwrap();
    }
    zstd::encode_all(&b.into_inner().unwrap()[..], 3).unwrap()
}

/// `len` bytes of xorshift noise from `seed`: incompressible, so offsets in
/// a compressed image follow the tar's.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
