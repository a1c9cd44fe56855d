//! A fake intake for the agent's tests: an HTTP/1.1 listener on 127.0.0.1 that reads each
//! request's gzip body (the agent always compresses) and answers what the test decides.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// Starts the listener and returns its port. `answer` gets each request's body, decompressed
/// (`None` when it is not gzip), and returns the whole HTTP response to send.
pub fn start(answer: impl Fn(Option<&[u8]>) -> &'static [u8] + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || serve(stream, &*answer));
        }
    });
    port
}

/// Answers the requests of one connection until the client closes it.
fn serve(stream: TcpStream, answer: &dyn Fn(Option<&[u8]>) -> &'static [u8]) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut plain = Vec::new();
        let decoded = flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .is_ok();
        let _ = writer.write_all(answer(decoded.then_some(&plain[..])));
    }
}
