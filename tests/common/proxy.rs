//! A TCP proxy on loopback in front of a server a test started, to make the network misbehave:
//! a fixed delay before each request (a remote bucket's latency), an outage that begins when a
//! request naming some text first passes (every connection dropped, new ones refused for a
//! while), and requests naming some text that never get an answer.
//!
//! Shared by the tests and the verify bench (`#[path]`), so it needs only std.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the proxy misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Waited before each chunk the client sends is passed on.
    pub delay: Duration,
    /// When a request containing this text first passes, every connection is dropped and new
    /// ones are closed at once for the duration.
    pub outage: Option<(String, Duration)>,
    /// A connection whose request contains this text is closed without an answer.
    pub unanswered: Option<String>,
}

pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// Set once the outage has begun.
    pub outage_began: Arc<AtomicBool>,
}

struct Shared {
    faults: Faults,
    upstream: u16,
    outage_until: Mutex<Option<Instant>>,
    outage_began: Arc<AtomicBool>,
    /// The sockets of open connections, by connection, to drop them all when an outage begins.
    open: Mutex<Vec<(u64, TcpStream)>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Proxy {
    /// Listens on `port` and forwards to `upstream` on loopback.
    pub fn start(port: u16, upstream: u16, faults: Faults) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the proxy's port is free");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let outage_began = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            faults,
            upstream,
            outage_until: Mutex::new(None),
            outage_began: outage_began.clone(),
            open: Mutex::new(Vec::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
        });
        let stopping = stop.clone();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let shared = shared.clone();
                        std::thread::spawn(move || serve(client, &shared));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Proxy {
            port,
            stop,
            outage_began,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn in_outage(shared: &Shared) -> bool {
    shared
        .outage_until
        .lock()
        .unwrap()
        .is_some_and(|t| Instant::now() < t)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len().max(1))
        .any(|w| w == needle.as_bytes())
}

fn serve(client: TcpStream, shared: &Shared) {
    if in_outage(shared) {
        return; // dropped: the client sees the connection closed
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", shared.upstream)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut open = shared.open.lock().unwrap();
        open.push((id, client.try_clone().unwrap()));
        open.push((id, server.try_clone().unwrap()));
    }
    let (mut from_server, mut to_client) =
        (server.try_clone().unwrap(), client.try_clone().unwrap());
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let (mut from_client, mut to_server) = (client, server);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from_client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if let Some(text) = &shared.faults.unanswered
            && contains(chunk, text)
        {
            break;
        }
        if let Some((text, length)) = &shared.faults.outage
            && contains(chunk, text)
            && !shared.outage_began.swap(true, Ordering::SeqCst)
        {
            *shared.outage_until.lock().unwrap() = Some(Instant::now() + *length);
            for (_, s) in shared.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
            break;
        }
        if !shared.faults.delay.is_zero() {
            std::thread::sleep(shared.faults.delay);
        }
        if to_server.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = from_client.shutdown(Shutdown::Both);
    let _ = to_server.shutdown(Shutdown::Both);
    let _ = back.join();
    shared.open.lock().unwrap().retain(|(i, _)| *i != id);
}
