//! The HTTP client rmcp uses for our sessions: our own reqwest client (our CA, timeouts,
//! no redirects) plus an Authorization header that always carries the token manager's
//! current token. rmcp's config takes a fixed header; wrapping the client is how a live
//! session follows token refreshes.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::Sse;

use super::exchange::Exchanges;
use crate::auth::token::TokenManager;

#[derive(Clone)]
pub struct AuthedHttp {
    inner: reqwest::Client,
    /// None for servers without OAuth (`auth = "none"` or `"headers"`): no Authorization
    /// header from us; static headers travel as rmcp's custom headers.
    tokens: Option<Arc<TokenManager>>,
    /// Where the session id of each traced `tools/call` is noted (rmcp keeps it to itself).
    exchanges: Exchanges,
}

impl AuthedHttp {
    pub fn new(inner: reqwest::Client, tokens: Option<Arc<TokenManager>>, exchanges: Exchanges) -> Self {
        Self { inner, tokens, exchanges }
    }

    /// rmcp's reqwest implementation adds `Bearer ` itself.
    fn auth(&self) -> Option<String> {
        self.tokens.as_ref().and_then(|t| t.bearer())
    }
}

type HttpResult<T> = Result<T, StreamableHttpError<reqwest::Error>>;

impl AuthedHttp {
    /// Notes a traced `tools/call`'s session, and sends its `traceparent` as the W3C header.
    fn note(
        &self,
        message: &ClientJsonRpcMessage,
        session: Option<&str>,
        headers: &mut HashMap<HeaderName, HeaderValue>,
    ) {
        if let Some(value) = self.exchanges.posted(message, session).and_then(|tp| HeaderValue::from_str(tp).ok()) {
            headers.insert(HeaderName::from_static("traceparent"), value);
        }
    }
}

impl StreamableHttpClient for AuthedHttp {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _fixed_auth: Option<String>,
        mut headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.note(&message, session_id.as_deref(), &mut headers);
        self.inner.post_message(uri, message, session_id, self.auth(), headers).await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _fixed_auth: Option<String>,
        mut headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.note(&message, session_id.as_deref(), &mut headers);
        self.inner
            .post_message_with_max_sse_event_size(uri, message, session_id, self.auth(), headers, max_sse_event_size)
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _fixed_auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<()> {
        self.inner.delete_session(uri, session_id, self.auth(), headers).await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _fixed_auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<BoxStream<'static, Result<Sse, SseError>>> {
        self.inner.get_stream(uri, session_id, last_event_id, self.auth(), headers).await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _fixed_auth: Option<String>,
        headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<BoxStream<'static, Result<Sse, SseError>>> {
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                self.auth(),
                headers,
                max_sse_event_size,
            )
            .await
    }
}
