//! A stand-in Docker Engine API on a UNIX socket for unit tests: it answers from a fixed
//! table of paths and records what it was asked.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

/// The paths the fake engine was asked, in order.
pub(crate) type Asked = Arc<Mutex<Vec<String>>>;

/// Serves `answers` (path, without the query -> status and JSON body) on a socket at `path`;
/// any other path gets 404. Runs until the test's runtime ends.
pub(crate) fn serve(path: &Path, answers: HashMap<String, (u16, String)>) -> Asked {
    let listener = UnixListener::bind(path).expect("bind fake engine socket");
    let asked: Asked = Arc::default();
    let log = asked.clone();
    let answers = Arc::new(answers);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answers = answers.clone();
            let log = log.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let key = req.uri().path().to_owned();
                log.lock().unwrap().push(key.clone());
                let (status, body) = answers
                    .get(&key)
                    .cloned()
                    .unwrap_or((404, r#"{"message":"page not found"}"#.to_owned()));
                async move {
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    asked
}
