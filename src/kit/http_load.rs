//! The load generator's HTTP callers (`bench --http`): each caller keeps one
//! HTTP/1.1 connection alive and invokes through daprd's HTTP actor API,
//! `POST /v1.0/actors/{type}/{id}/method/echo`, as an SDK's `ActorProxy`
//! would (but without a new connection per call, which would measure TCP
//! setup rather than the front door).

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::kit::load::Invoker;

/// One caller's kept-alive connection to the HTTP front door.
pub struct HttpInvoker {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
    timeout: Duration,
}

impl HttpInvoker {
    /// Opens the caller's connection.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(HttpInvoker {
            addr,
            sender,
            timeout,
        })
    }

    async fn call(&mut self, path: String, data: Vec<u8>) -> Result<Vec<u8>, String> {
        self.sender
            .ready()
            .await
            .map_err(|_| "connection closed".to_owned())?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, self.addr.to_string())
            .body(Full::new(Bytes::from(data)))
            .map_err(|e| e.to_string())?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|_| "connection failed".to_owned())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| "body failed".to_owned())?
            .to_bytes();
        if status != http::StatusCode::OK {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        Ok(body.to_vec())
    }
}

impl Invoker for HttpInvoker {
    async fn invoke(
        &mut self,
        actor_type: String,
        actor_id: String,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let path = format!("/v1.0/actors/{actor_type}/{actor_id}/method/echo");
        match tokio::time::timeout(self.timeout, self.call(path, data)).await {
            Ok(outcome) => outcome,
            Err(_) => Err("timeout".to_owned()),
        }
    }
}
