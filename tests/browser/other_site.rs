//! Another site, for the CSRF test: a page that posts a form to the
//! monitor as soon as it loads.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A page served by another site that posts a form to the monitor: what a
/// CSRF attack looks like. Answers every request with it until dropped.
pub struct OtherSite {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl OtherSite {
    pub fn start(target: &str) -> OtherSite {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let page = format!(
            "<!doctype html><html><body><form id=\"f\" method=\"post\" action=\"{target}\" enctype=\"text/plain\">\
             <input name='{{\"project\":\"prod\",\"key\":\"null\",\"seen\":\"2100-01-01T00:00:00Z\",\"x\":\"' value='\"}}'>\
             </form><script>document.getElementById('f').submit();</script></body></html>"
        );
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let mut buf = [0u8; 4096];
                        let _ = s.read(&mut buf);
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                            page.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        OtherSite { addr, stop }
    }
}

impl Drop for OtherSite {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
