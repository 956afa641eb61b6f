//! A TCP proxy in front of the test Postgres (`TEST_DATABASE_URL`'s host
//! and port, its user and password carried in [`Proxy::url`]), for real
//! network faults: cut every open connection, refuse new ones for a while,
//! or accept and never answer.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FORWARD: u8 = 0;
const BLACKHOLE: u8 = 1;
const REFUSE: u8 = 2;

pub struct Proxy {
    pub addr: SocketAddr,
    server: super::Server,
    upstream: SocketAddr,
    mode: Arc<AtomicU8>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    listener: Mutex<Option<Arc<TcpListener>>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to the test server.
    pub fn start() -> Proxy {
        let server = super::server();
        let upstream = std::net::ToSocketAddrs::to_socket_addrs(&server.addr())
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("cannot resolve the test server {}", server.addr()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            server,
            upstream,
            mode: Arc::new(AtomicU8::new(FORWARD)),
            open: Arc::new(Mutex::new(Vec::new())),
            listener: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    /// `postgres://` URL through the proxy to `database`, as the test
    /// server's user with its password.
    pub fn url(&self, database: &str) -> String {
        self.server.url_via(&self.addr.to_string(), database)
    }

    fn serve(&self, listener: TcpListener) {
        let listener = Arc::new(listener);
        *self.listener.lock().unwrap() = Some(listener.clone());
        let (mode, open, upstream) = (self.mode.clone(), self.open.clone(), self.upstream);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                match mode.load(Ordering::SeqCst) {
                    REFUSE => break,
                    BLACKHOLE => open.lock().unwrap().push(client),
                    _ => {
                        let Ok(server) =
                            TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                        else {
                            continue;
                        };
                        open.lock().unwrap().push(client.try_clone().unwrap());
                        open.lock().unwrap().push(server.try_clone().unwrap());
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pipe(server, client);
                    }
                }
            }
        });
    }

    /// Closes every connection going through the proxy.
    pub fn cut(&self) -> usize {
        let mut open = self.open.lock().unwrap();
        let n = open.len();
        for s in open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        n
    }

    /// New connections are accepted and then never answered.
    pub fn blackhole(&self) {
        self.mode.store(BLACKHOLE, Ordering::SeqCst);
    }

    /// Closes the listening socket: new connections are refused. Open ones
    /// are cut too, as when a server goes down.
    pub fn refuse(&self) {
        self.mode.store(REFUSE, Ordering::SeqCst);
        if let Some(l) = self.listener.lock().unwrap().take() {
            // Wake the accept loop so it sees REFUSE and drops the listener.
            let _ = TcpStream::connect(l.local_addr().unwrap());
        }
        self.cut();
        // Wait until the port really refuses.
        for _ in 0..100 {
            if TcpStream::connect(self.addr).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Forwards again (listening again if it was refusing).
    pub fn restore(&self) {
        let was = self.mode.swap(FORWARD, Ordering::SeqCst);
        if was == REFUSE {
            let listener = TcpListener::bind(self.addr).expect("rebind the proxy's port");
            self.serve(listener);
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
