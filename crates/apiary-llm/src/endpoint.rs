//! An endpoint: a provider's protocol at a base URL with a key, shared limits, timeouts and
//! a retry policy - or a cassette to record to or replay from.
//!
//! Waiting when told to is not a failure: `429`, `503` and Anthropic's `529 overloaded` are
//! retried after `Retry-After` (or a growing backoff when there is none), and the wait pauses
//! every caller of the endpoint. `500`, `502`, `504` and connection failures are retried with
//! a jittered backoff. Everything else, and a stream that breaks, is an error naming the
//! provider and model.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use apiary_metrics as m;

use crate::cassette::{Cassette, Mode};
use crate::chat::{ChatRequest, ChatResponse, Delta};
use crate::limiter::{Limiter, RateLimits};
use crate::provider::{DecodeError, Decoder, Provider, WireEvent};
use crate::LlmError;

/// How long a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// To connect.
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// From sending the request to the answer's headers.
    #[serde(with = "humantime_serde")]
    pub first_byte: Duration,
    /// Between two events of a stream.
    #[serde(with = "humantime_serde")]
    pub idle: Duration,
    /// For the whole answer.
    #[serde(with = "humantime_serde")]
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// How calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts of one call, the first included.
    pub attempts: u32,
    /// The first backoff after a server error (doubled each time, jittered).
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    /// The longest single wait (a longer `Retry-After` fails the call instead).
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(120),
        }
    }
}

/// Where model calls go. Cheap to clone; clones share the HTTP connections and the limiter,
/// so give every agent that uses one endpoint and key the same `Endpoint`.
///
/// ```
/// use apiary_llm::{Endpoint, Provider, RateLimits};
///
/// let endpoint = Endpoint::builder(Provider::OpenAi, "http://127.0.0.1:11434/v1") // Ollama
///     .limits(RateLimits { concurrency: Some(4), ..RateLimits::default() })
///     .build()?;
/// assert_eq!(endpoint.to_string(), "openai at http://127.0.0.1:11434/v1");
/// # Ok::<(), apiary_llm::LlmError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    provider: Provider,
    /// The request URL, parsed once.
    url: reqwest::Url,
    api_key: Option<String>,
    client: reqwest::Client,
    limiter: Limiter,
    timeouts: Timeouts,
    retry: RetryPolicy,
    cassette: Option<Cassette>,
    label: String,
}

/// Builds an [`Endpoint`].
#[derive(Debug)]
pub struct EndpointBuilder {
    provider: Provider,
    base_url: String,
    api_key: Option<String>,
    limits: RateLimits,
    timeouts: Timeouts,
    retry: RetryPolicy,
    cassette: Option<(Mode, std::path::PathBuf)>,
}

impl EndpointBuilder {
    /// The key, sent as `Authorization: Bearer` (OpenAI) or `x-api-key` (Anthropic).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The key, read from the environment variable `var`.
    ///
    /// # Errors
    ///
    /// [`LlmError::Config`] naming the variable if it is not set.
    pub fn api_key_env(mut self, var: &str) -> Result<Self, LlmError> {
        let key = std::env::var(var).map_err(|_| LlmError::Config {
            what: format!("api_key_env `{var}`"),
            reason: "the environment variable is not set".into(),
        })?;
        self.api_key = Some(key);
        Ok(self)
    }

    /// Limits shared by every caller of this endpoint.
    pub fn limits(mut self, limits: RateLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Retries.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Records every call made through this endpoint to `path` (appending).
    pub fn record(mut self, path: impl AsRef<Path>) -> Self {
        self.cassette = Some((Mode::Record, path.as_ref().to_owned()));
        self
    }

    /// Answers every call from the recordings in `path`, without the network.
    pub fn replay(mut self, path: impl AsRef<Path>) -> Self {
        self.cassette = Some((Mode::Replay, path.as_ref().to_owned()));
        self
    }

    /// The endpoint.
    ///
    /// # Errors
    ///
    /// [`LlmError::Config`] for a base URL that is not http(s), and
    /// [`LlmError::Cassette`] for a cassette that cannot be opened or read.
    pub fn build(self) -> Result<Endpoint, LlmError> {
        let base_url = self.base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(LlmError::Config {
                what: format!("base_url {base_url:?}"),
                reason: "must start with http:// or https://".into(),
            });
        }
        let url =
            reqwest::Url::parse(&format!("{base_url}{}", self.provider.path())).map_err(|e| {
                LlmError::Config {
                    what: format!("base_url {base_url:?}"),
                    reason: e.to_string(),
                }
            })?;
        let client = reqwest::Client::builder()
            .connect_timeout(self.timeouts.connect)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LlmError::Config {
                what: "HTTP client".into(),
                reason: e.to_string(),
            })?;
        let cassette = match self.cassette {
            Some((Mode::Record, path)) => Some(Cassette::record(&path)?),
            Some((Mode::Replay, path)) => Some(Cassette::replay(&path)?),
            None => None,
        };
        let label = format!("{} at {base_url}", self.provider);
        Ok(Endpoint {
            inner: Arc::new(Inner {
                provider: self.provider,
                url,
                api_key: self.api_key,
                client,
                limiter: Limiter::new(self.limits),
                timeouts: self.timeouts,
                retry: self.retry,
                cassette,
                label,
            }),
        })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.inner.label)
    }
}

/// A failed attempt: what to do about it.
enum Attempt {
    /// Wait, then try again (`told`: the provider said how long).
    Retry {
        error: LlmError,
        wait: Option<Duration>,
        told: bool,
    },
    /// Give up with this error.
    Fail(LlmError),
}

impl Endpoint {
    /// An endpoint speaking `provider` at `base_url` (OpenAI: up to `/v1`; Anthropic: the
    /// host, e.g. `https://api.anthropic.com`).
    pub fn builder(provider: Provider, base_url: impl Into<String>) -> EndpointBuilder {
        EndpointBuilder {
            provider,
            base_url: base_url.into(),
            api_key: None,
            limits: RateLimits::default(),
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            cassette: None,
        }
    }

    /// The protocol.
    pub fn provider(&self) -> Provider {
        self.inner.provider
    }

    /// Makes one call, reporting deltas as they stream in; waits (and retries) as the
    /// provider asks, but not past `deadline`.
    ///
    /// # Errors
    ///
    /// An [`LlmError`] naming the provider and model.
    pub async fn call(
        &self,
        req: &ChatRequest,
        deadline: Option<Instant>,
        on: &mut (dyn FnMut(Delta) + Send),
    ) -> Result<ChatResponse, LlmError> {
        if let Some(c) = self
            .inner
            .cassette
            .as_ref()
            .filter(|c| c.mode() == Mode::Replay)
        {
            let events = c.lookup(self.inner.provider, req)?;
            let mut decoder = self.inner.provider.decoder(req);
            for event in &events {
                if decoder
                    .feed(event, on)
                    .map_err(|e| self.decode_error(req, e))?
                {
                    break;
                }
            }
            return decoder.finish().map_err(|e| self.decode_error(req, e));
        }
        let body = self.inner.provider.encode(req);
        let worst = req.worst_case_tokens();
        let retry = self.inner.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let admitted = self.inner.limiter.admit(worst, deadline).await;
            let _slot = match admitted {
                Ok(slot) => slot,
                Err(wait) => {
                    return Err(LlmError::RateLimited {
                        provider: self.inner.label.clone(),
                        model: req.model.clone(),
                        status: 429,
                        attempts: attempt - 1,
                        retry_after: Some(wait),
                    })
                }
            };
            let mut recorded = Vec::new();
            match self.attempt(req, &body, on, &mut recorded).await {
                Ok(response) => {
                    if let Some(c) = &self.inner.cassette {
                        c.append(self.inner.provider, req, &response.model, recorded)?;
                    }
                    return Ok(response);
                }
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry { error, wait, told }) => {
                    if attempt >= retry.attempts {
                        return Err(error);
                    }
                    let backoff = retry.backoff.saturating_mul(1 << (attempt - 1).min(16));
                    let wait = wait.unwrap_or_else(|| jitter(backoff));
                    if wait > retry.max_wait || deadline.is_some_and(|d| Instant::now() + wait > d)
                    {
                        return Err(error);
                    }
                    if told {
                        metrics::counter!(m::LLM_RATE_LIMITED_TOTAL.name, "endpoint" => self.inner.label.clone())
                            .increment(1);
                        // Everyone waits: one 429 must not become a storm of them.
                        self.inner.limiter.pause_until(Instant::now() + wait);
                    } else {
                        tokio::time::sleep(wait).await;
                    }
                    tracing::debug!(endpoint = %self, model = %req.model, attempt, ?wait, error = %error, "model call: retrying");
                }
            }
        }
    }

    async fn attempt(
        &self,
        req: &ChatRequest,
        body: &serde_json::Value,
        on: &mut (dyn FnMut(Delta) + Send),
        recorded: &mut Vec<WireEvent>,
    ) -> Result<ChatResponse, Attempt> {
        let inner = &self.inner;
        let provider = inner.provider;
        let mut request = inner.client.post(inner.url.clone()).json(body);
        request = match (provider, &inner.api_key) {
            (Provider::OpenAi, Some(key)) => request.bearer_auth(key),
            (Provider::OpenAi, None) => request,
            (Provider::Anthropic, key) => request
                .header("x-api-key", key.as_deref().unwrap_or(""))
                .header("anthropic-version", crate::provider::ANTHROPIC_VERSION),
        };
        let started = Instant::now();
        let response = match tokio::time::timeout(inner.timeouts.first_byte, request.send()).await {
            Err(_) => {
                return Err(Attempt::Retry {
                    error: self.timeout(req, "first byte", inner.timeouts.first_byte),
                    wait: None,
                    told: false,
                })
            }
            Ok(Err(e)) => {
                let error = self.transport(req, &e);
                // Connection failures are worth another try; others (a bad URL) are not.
                return Err(if e.is_connect() || e.is_request() {
                    Attempt::Retry {
                        error,
                        wait: None,
                        told: false,
                    }
                } else {
                    Attempt::Fail(error)
                });
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let told = retry_after(response.headers());
            let text = response.bytes().await.unwrap_or_default();
            let message = provider.error_message(&text);
            return Err(match status {
                429 | 503 | 529 => Attempt::Retry {
                    error: LlmError::RateLimited {
                        provider: inner.label.clone(),
                        model: req.model.clone(),
                        status,
                        attempts: 0,
                        retry_after: told,
                    },
                    wait: told,
                    told: true,
                },
                500 | 502 | 504 => Attempt::Retry {
                    error: self.status(req, status, message),
                    wait: None,
                    told: false,
                },
                _ => Attempt::Fail(self.status(req, status, message)),
            });
        }
        let mut bytes = response.bytes_stream();
        let mut parser = crate::sse::SseParser::default();
        let mut pending = std::collections::VecDeque::new();
        let mut decoder: Decoder = provider.decoder(req);
        let end = started + inner.timeouts.total;
        let idle = inner.timeouts.idle;
        // One timer for the whole stream, re-armed only when it fires early: a timeout per
        // chunk would touch the timer wheel (and may wake its thread) for every chunk.
        let mut last = Instant::now();
        let timer = tokio::time::sleep_until((last + idle).min(end));
        tokio::pin!(timer);
        loop {
            let Some(event) = pending.pop_front() else {
                let next = tokio::select! {
                    biased;
                    next = bytes.next() => next,
                    () = &mut timer => {
                        let now = Instant::now();
                        if now >= end {
                            return Err(Attempt::Fail(self.timeout(
                                req,
                                "complete answer",
                                inner.timeouts.total,
                            )));
                        }
                        if now >= last + idle {
                            return Err(Attempt::Fail(self.timeout(req, "next chunk", idle)));
                        }
                        timer.as_mut().reset((last + idle).min(end));
                        continue;
                    }
                };
                last = Instant::now();
                let cut = |reason: String| {
                    Attempt::Fail(LlmError::StreamCut {
                        provider: inner.label.clone(),
                        model: req.model.clone(),
                        reason,
                    })
                };
                match next {
                    None => break,
                    Some(Err(e)) => return Err(cut(e.to_string())),
                    Some(Ok(chunk)) => parser.feed(&chunk, &mut pending).map_err(cut)?,
                }
                continue;
            };
            let done = match decoder.feed(&event, on) {
                Ok(done) => done,
                Err(DecodeError::Remote {
                    message,
                    overloaded: true,
                }) => {
                    // Overloaded after the answer began: deltas are out, so no retry here.
                    tracing::warn!(endpoint = %self, %message, "overloaded mid-stream");
                    return Err(Attempt::Fail(LlmError::RateLimited {
                        provider: inner.label.clone(),
                        model: req.model.clone(),
                        status: 529,
                        attempts: 1,
                        retry_after: None,
                    }));
                }
                Err(e) => return Err(Attempt::Fail(self.decode_error(req, e))),
            };
            if inner.cassette.is_some() {
                recorded.push(event);
            }
            if done {
                // Read the body to its end (normally nothing is left): a connection whose
                // body was not consumed is not reused, and the next call would pay for a new
                // one. Bounded, and what comes after the answer is not looked at.
                let rest = inner
                    .timeouts
                    .idle
                    .min(end.saturating_duration_since(Instant::now()));
                let _ = tokio::time::timeout(rest, async {
                    while let Some(Ok(_)) = bytes.next().await {}
                })
                .await;
                break;
            }
        }
        decoder
            .finish()
            .map_err(|e| Attempt::Fail(self.decode_error(req, e)))
    }

    fn decode_error(&self, req: &ChatRequest, e: DecodeError) -> LlmError {
        let (provider, model) = (self.inner.label.clone(), req.model.clone());
        match e {
            DecodeError::Malformed(reason) => LlmError::Malformed {
                provider,
                model,
                reason,
            },
            DecodeError::Cut(reason) => LlmError::StreamCut {
                provider,
                model,
                reason,
            },
            DecodeError::UnknownFinish(reason) => LlmError::UnknownFinish {
                provider,
                model,
                reason,
            },
            DecodeError::Remote { message, .. } => LlmError::Status {
                provider,
                model,
                status: 200,
                message,
            },
        }
    }

    fn timeout(&self, req: &ChatRequest, waiting_for: &'static str, after: Duration) -> LlmError {
        LlmError::Timeout {
            provider: self.inner.label.clone(),
            model: req.model.clone(),
            waiting_for,
            after,
        }
    }

    fn transport(&self, req: &ChatRequest, e: &reqwest::Error) -> LlmError {
        // reqwest's message is terse; its sources say why (refused, reset, DNS).
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason = format!("{reason}: {s}");
            source = s.source();
        }
        LlmError::Transport {
            provider: self.inner.label.clone(),
            model: req.model.clone(),
            reason,
        }
    }

    fn status(&self, req: &ChatRequest, status: u16, message: String) -> LlmError {
        LlmError::Status {
            provider: self.inner.label.clone(),
            model: req.model.clone(),
            status,
            message,
        }
    }
}

/// `Retry-After` (seconds or an HTTP date) or `retry-after-ms`.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    let value = get("retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// `d` scaled by a random factor in [0.5, 1.5), so that callers do not retry in step.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + fastrand::f64())
}
