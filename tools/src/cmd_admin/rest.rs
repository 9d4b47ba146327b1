//! The HTTP side of `magnetar-admin`: one request, Pulsar's `{"reason"}` turned into an error.

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

/// A client of the admin REST API at one base URL.
#[derive(Debug, Clone)]
pub struct Rest {
    http: reqwest::Client,
    base: String,
}

/// A raw response (for peek, whose body is the message payload).
#[derive(Debug)]
pub struct RawResponse {
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body bytes.
    pub body: bytes::Bytes,
}

impl Rest {
    /// A client of `base` (`http://host:port`).
    pub fn new(base: &str) -> anyhow::Result<Rest> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Rest {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_string))
            .unwrap_or(text);
        bail!("{reason} (HTTP {})", status.as_u16())
    }

    /// A request whose answer is JSON (`Null` for an empty body).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| anyhow!("{e}"))?;
        let resp = self.send(m, path, body.map(|b| b.to_string())).await?;
        let text = resp.text().await.context("reading the response")?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("response is not JSON: {text}"))
    }

    /// GET returning JSON.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call("GET", path, None).await
    }

    /// GET returning raw bytes and headers.
    pub async fn get_raw(&self, path: &str) -> anyhow::Result<RawResponse> {
        let resp = self.send(reqwest::Method::GET, path, None).await?;
        let headers = resp.headers().clone();
        let body = resp.bytes().await.context("reading the response")?;
        Ok(RawResponse { headers, body })
    }
}

/// Prints JSON pretty like pulsar-admin (nothing for `null`).
pub fn print_json(v: &Value) -> anyhow::Result<()> {
    if !v.is_null() {
        println!("{}", serde_json::to_string_pretty(v)?);
    }
    Ok(())
}
