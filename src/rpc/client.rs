//! The client side of the query protocol, used by `ourcoin-cli`.
//!
//! Each client is a throwaway libp2p node: a fresh ed25519 identity, TCP +
//! noise + yamux, and request-response on [`QUERY_PROTOCOL`] in the outbound
//! direction only. It dials the node, asks, and is dropped. Every step is
//! bounded by the caller's timeout, so an unreachable node is reported within
//! seconds instead of hanging a script.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::TransportError;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundFailure, ProtocolSupport};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder};

use super::{QueryRequest, QueryResponse, MAX_QUERY_REQUEST_BYTES, MAX_QUERY_RESPONSE_BYTES, QUERY_PROTOCOL};
use crate::codec::PostcardCodec;

type QueryBehaviour = request_response::Behaviour<PostcardCodec<QueryRequest, QueryResponse>>;

/// Why a query got no answer. Each message is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the node at {node}: {reason} (is ourcoind running? see --node)")]
    Unreachable { node: Multiaddr, reason: String },
    #[error("the node at {node} did not answer within {}", Seconds(*.timeout))]
    Timeout { node: Multiaddr, timeout: Duration },
    #[error(
        "something at {node} accepted the connection, but the encrypted handshake failed: {reason} \
         (is an ourcoind node listening there? see --node)"
    )]
    Handshake { node: Multiaddr, reason: String },
    #[error("the node at {node} has peer id {obtained}, not the one the address names; check --node")]
    WrongPeer { node: Multiaddr, obtained: PeerId },
    #[error(
        "the node at {node} does not serve the query protocol {QUERY_PROTOCOL} (is it an ourcoind of this version?)"
    )]
    UnsupportedProtocol { node: Multiaddr },
    #[error(
        "the node at {node} closed the connection without answering (if it runs on another machine, \
         its --query-allow must include this one)"
    )]
    ConnectionClosed { node: Multiaddr },
    #[error("the query to the node at {node} failed: {reason}")]
    Failed { node: Multiaddr, reason: String },
    #[error("cannot start the client's network stack: {0}")]
    Setup(String),
}

/// A duration for people: `5 s`, `1.5 s`.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_millis() == 0 {
            write!(f, "{} s", self.0.as_secs())
        } else {
            write!(f, "{:.1} s", self.0.as_secs_f64())
        }
    }
}

/// How long to wait before dialling again after a refused handshake.
const HANDSHAKE_RETRY: Duration = Duration::from_millis(200);

/// A connection to one node, ready for queries.
pub struct QueryClient {
    swarm: Swarm<QueryBehaviour>,
    node: Multiaddr,
    peer: PeerId,
    timeout: Duration,
}

impl QueryClient {
    /// Dials `node` (with or without a trailing `/p2p/<peer id>`, which, when
    /// present, the node must prove) and waits for the connection, at most
    /// `timeout`.
    pub async fn connect(node: &Multiaddr, timeout: Duration) -> Result<QueryClient, ClientError> {
        let mut swarm = build_swarm(timeout)?;
        // A node in a flood of connections may refuse a handshake while its
        // pool of unidentified connections is full: that is tried again
        // until the deadline, and reported only if it never succeeds.
        let mut refused: Option<ClientError> = None;
        let establish = async {
            loop {
                swarm.dial(node.clone()).map_err(|e| dial_error(node, e))?;
                let outcome = loop {
                    match swarm.select_next_some().await {
                        SwarmEvent::ConnectionEstablished { peer_id, .. } => break Ok(peer_id),
                        SwarmEvent::OutgoingConnectionError { error, .. } => break Err(dial_error(node, error)),
                        _ => {}
                    }
                };
                match outcome {
                    Err(error @ ClientError::Handshake { .. }) => {
                        refused = Some(error);
                        tokio::time::sleep(HANDSHAKE_RETRY).await;
                    }
                    other => return other,
                }
            }
        };
        let peer = match tokio::time::timeout(timeout, establish).await {
            Ok(result) => result?,
            Err(_) => {
                if let Some(error) = refused {
                    return Err(error);
                }
                let reason = format!("no answer within {}", Seconds(timeout));
                return Err(ClientError::Unreachable { node: node.clone(), reason });
            }
        };
        Ok(QueryClient { swarm, node: node.clone(), peer, timeout })
    }

    /// Sends one request and waits for its response, at most the timeout.
    pub async fn request(&mut self, request: QueryRequest) -> Result<QueryResponse, ClientError> {
        let id = self.swarm.behaviour_mut().send_request(&self.peer, request);
        let node = &self.node;
        let peer = self.peer;
        let swarm = &mut self.swarm;
        let exchange = async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { request_id, response },
                        ..
                    }) if request_id == id => return Ok(response),
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, error, .. })
                        if request_id == id =>
                    {
                        return Err(outbound_failure(node, self.timeout, error));
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } if peer_id == peer => {
                        return Err(ClientError::ConnectionClosed { node: node.clone() });
                    }
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout { node: self.node.clone(), timeout: self.timeout }),
        }
    }

    /// The peer id the node proved in the handshake.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }
}

/// Connects to `node`, sends one request and returns the response. The
/// connection and the request are each bounded by `timeout`.
pub async fn query(node: &Multiaddr, request: QueryRequest, timeout: Duration) -> Result<QueryResponse, ClientError> {
    QueryClient::connect(node, timeout).await?.request(request).await
}

/// [`query`] for callers without a runtime: runs it on a fresh single-threaded one.
pub fn query_blocking(
    node: &Multiaddr,
    request: QueryRequest,
    timeout: Duration,
) -> Result<QueryResponse, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Setup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(query(node, request, timeout))
}

fn build_swarm(timeout: Duration) -> Result<Swarm<QueryBehaviour>, ClientError> {
    let behaviour = request_response::Behaviour::with_codec(
        PostcardCodec::new(MAX_QUERY_REQUEST_BYTES, MAX_QUERY_RESPONSE_BYTES),
        [(StreamProtocol::new(QUERY_PROTOCOL), ProtocolSupport::Outbound)],
        request_response::Config::default().with_request_timeout(timeout),
    );
    let swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .map_err(|e| ClientError::Setup(e.to_string()))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| ClientError::Setup(e.to_string()))?
        // The connection sits idle between the handshake and our first request:
        // keep it for as long as we are prepared to wait anyway.
        .with_swarm_config(|config| config.with_idle_connection_timeout(timeout))
        // Our own deadline around the dial fires first and says so plainly;
        // the transport's is only a backstop.
        .with_connection_timeout(timeout.saturating_add(Duration::from_secs(1)))
        .build();
    Ok(swarm)
}

fn dial_error(node: &Multiaddr, error: DialError) -> ClientError {
    let unreachable = |reason: String| ClientError::Unreachable { node: node.clone(), reason };
    match error {
        DialError::WrongPeerId { obtained, .. } => ClientError::WrongPeer { node: node.clone(), obtained },
        DialError::Transport(attempts) => match attempts.into_iter().next() {
            Some((_, TransportError::MultiaddrNotSupported(_))) => unreachable(unsupported_address(node)),
            Some((_, TransportError::Other(e))) if is_handshake_failure(&e) => {
                ClientError::Handshake { node: node.clone(), reason: io_reason(&e) }
            }
            Some((_, TransportError::Other(e))) => unreachable(io_reason(&e)),
            None => unreachable("the connection failed".into()),
        },
        DialError::NoAddresses => unreachable(unsupported_address(node)),
        other => unreachable(root_cause(&other)),
    }
}

fn unsupported_address(node: &Multiaddr) -> String {
    let has_tcp = node.iter().any(|p| matches!(p, Protocol::Tcp(_)));
    let has_ip = node.iter().any(|p| matches!(p, Protocol::Ip4(_) | Protocol::Ip6(_)));
    if has_tcp && has_ip {
        "this address cannot be dialled".into()
    } else {
        "only TCP addresses like /ip4/127.0.0.1/tcp/9733 (optionally ending in /p2p/<peer id>) are supported".into()
    }
}

/// The errors nested in a transport error, outermost first. An `io::Error`
/// that wraps another error reports that error's source as its own, so the
/// wrapped error is stepped into explicitly.
fn error_chain(error: &io::Error) -> Vec<&(dyn StdError + 'static)> {
    let mut chain = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        chain.push(e);
        current = match e.downcast_ref::<io::Error>().and_then(|io_error| io_error.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    chain
}

/// The innermost reason of a transport error, in words: `connection refused`
/// rather than a chain of wrappers. The socket error sits behind wrappers
/// (`Either`) that display it but do not expose it as a source, so the
/// innermost text is taken and tidied, not the `io::Error` itself.
fn io_reason(error: &io::Error) -> String {
    let chain = error_chain(error);
    let innermost = chain.last().map_or_else(|| error.to_string(), |e| e.to_string());
    tidy_os_message(&innermost)
}

/// Whether the TCP connection opened but the noise handshake on it failed:
/// something listens there, but not an ourcoind node (or not reachable as one).
fn is_handshake_failure(error: &io::Error) -> bool {
    error_chain(error).iter().any(|e| e.downcast_ref::<noise::Error>().is_some())
}

/// `Connection refused (os error 111)` -> `connection refused`.
fn tidy_os_message(text: &str) -> String {
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text.get(..at).unwrap_or(text),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".into(),
    }
}

fn root_cause(error: &dyn StdError) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

fn outbound_failure(node: &Multiaddr, timeout: Duration, error: OutboundFailure) -> ClientError {
    let node = node.clone();
    match error {
        OutboundFailure::Timeout => ClientError::Timeout { node, timeout },
        OutboundFailure::ConnectionClosed => ClientError::ConnectionClosed { node },
        OutboundFailure::UnsupportedProtocols => ClientError::UnsupportedProtocol { node },
        OutboundFailure::DialFailure => {
            ClientError::Unreachable { node, reason: "the connection was lost before the request was sent".into() }
        }
        OutboundFailure::Io(e) => ClientError::Failed { node, reason: io_reason(&e) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port on loopback that nothing listens on (bound, then released).
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_quickly_as_refused() {
        let node: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", closed_port()).parse().unwrap();
        let started = std::time::Instant::now();
        let err = query(&node, QueryRequest::Status, Duration::from_secs(5)).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        let text = err.to_string();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{text}");
        assert!(text.contains("connection refused"), "{text}");
        assert!(!text.contains('\n'));
    }

    #[tokio::test]
    async fn a_silent_listener_times_out_within_the_deadline() {
        // Accepts TCP but never speaks: the noise handshake cannot finish.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let node: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        let started = std::time::Instant::now();
        let err = query(&node, QueryRequest::Status, Duration::from_millis(1500)).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
        let text = err.to_string();
        assert!(text.contains("no answer within 1.5 s"), "{text}");
        assert!(!text.contains('\n'));
        hold.abort();
    }

    #[tokio::test]
    async fn a_listener_that_is_not_a_node_is_named_as_such() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let serve = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut socket, _)) = listener.accept().await {
                let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let node: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        let err = query(&node, QueryRequest::Status, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, ClientError::Handshake { .. }), "{err}");
        serve.abort();
    }

    #[tokio::test]
    async fn a_non_tcp_address_is_explained() {
        let node: Multiaddr = "/dns4/localhost/tcp/1".parse().unwrap();
        let err = query(&node, QueryRequest::Status, Duration::from_secs(2)).await.unwrap_err();
        assert!(err.to_string().contains("only TCP addresses"), "{err}");
    }

    /// A stand-in node serving the query protocol on loopback: it answers
    /// every request with an `Error` echoing the request. Returns its address
    /// and peer id.
    async fn echo_node() -> (Multiaddr, PeerId) {
        let behaviour: QueryBehaviour = request_response::Behaviour::with_codec(
            PostcardCodec::new(MAX_QUERY_REQUEST_BYTES, MAX_QUERY_RESPONSE_BYTES),
            [(StreamProtocol::new(QUERY_PROTOCOL), ProtocolSupport::Inbound)],
            request_response::Config::default(),
        );
        let mut swarm = SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
            .unwrap()
            .with_behaviour(|_| behaviour)
            .unwrap()
            .build();
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        let peer = *swarm.local_peer_id();
        tokio::spawn(async move {
            loop {
                if let SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                }) = swarm.select_next_some().await
                {
                    let reply = QueryResponse::Error(format!("{request:?}"));
                    let _ = swarm.behaviour_mut().send_response(channel, reply);
                }
            }
        });
        (addr, peer)
    }

    #[tokio::test]
    async fn asks_a_node_with_or_without_its_peer_id() {
        let (addr, peer) = echo_node().await;
        let timeout = Duration::from_secs(5);
        let answer = query(&addr, QueryRequest::Status, timeout).await.unwrap();
        assert_eq!(answer, QueryResponse::Error("Status".into()));

        let full = addr.clone().with(Protocol::P2p(peer));
        let mut client = QueryClient::connect(&full, timeout).await.unwrap();
        assert_eq!(client.peer_id(), peer);
        // One connection serves several requests.
        for limit in [1, 2] {
            let answer = client.request(QueryRequest::Mempool { limit }).await.unwrap();
            assert_eq!(answer, QueryResponse::Error(format!("Mempool {{ limit: {limit} }}")));
        }
    }

    #[tokio::test]
    async fn a_wrong_peer_id_in_the_address_is_refused() {
        let (addr, _) = echo_node().await;
        let other = PeerId::random();
        let err =
            query(&addr.with(Protocol::P2p(other)), QueryRequest::Status, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, ClientError::WrongPeer { .. }), "{err}");
    }

    #[test]
    fn os_errors_read_as_words() {
        assert_eq!(tidy_os_message("Connection refused (os error 111)"), "connection refused");
        assert_eq!(tidy_os_message("No route to host (os error 113)"), "no route to host");
        assert_eq!(tidy_os_message("handshake failed"), "handshake failed");
    }

    #[test]
    fn seconds_read_naturally() {
        assert_eq!(Seconds(Duration::from_secs(5)).to_string(), "5 s");
        assert_eq!(Seconds(Duration::from_millis(1500)).to_string(), "1.5 s");
    }
}
