//! A STUN Binding client for learning a server-reflexive address (RFC 8489 §3, XOR-MAPPED-ADDRESS),
//! sans-IO: build the request bytes, send them yourself, hand back what arrives. STUN encoding
//! and parsing come from webrtc-rs's `rtc-stun`.

use std::net::SocketAddr;

use rtc_stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Getter, Message, Setter, TransactionId};
use rtc_stun::xoraddr::XorMappedAddress;

/// Why a STUN exchange failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StunClientError {
    /// Building the request failed.
    #[error("building the STUN request: {0}")]
    Build(String),
    /// The server answered our transaction without a usable XOR-MAPPED-ADDRESS.
    #[error("STUN response without a usable XOR-MAPPED-ADDRESS: {0}")]
    NoMappedAddress(String),
}

/// One outstanding Binding request.
#[derive(Clone, Debug)]
pub struct BindingRequest {
    transaction_id: TransactionId,
    /// The bytes to send to the server.
    pub bytes: Vec<u8>,
}

impl BindingRequest {
    /// A Binding request with a fresh random transaction id.
    pub fn new() -> Result<Self, StunClientError> {
        let mut message = Message::new();
        let setters: [Box<dyn Setter>; 2] =
            [Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)];
        message
            .build(&setters)
            .map_err(|e| StunClientError::Build(e.to_string()))?;
        Ok(BindingRequest {
            transaction_id: message.transaction_id,
            bytes: message.raw.clone(),
        })
    }

    /// Reads a datagram: `Ok(None)` if it is not a success response to this request (ignore it),
    /// `Ok(Some(address))` with the mapped address, or an error for a malformed answer to it.
    pub fn parse_response(&self, datagram: &[u8]) -> Result<Option<SocketAddr>, StunClientError> {
        let mut message = Message::new();
        if message.unmarshal_binary(datagram).is_err()
            || message.transaction_id != self.transaction_id
            || message.typ != BINDING_SUCCESS
        {
            return Ok(None);
        }
        let mut mapped = XorMappedAddress::default();
        mapped
            .get_from(&message)
            .map_err(|e| StunClientError::NoMappedAddress(e.to_string()))?;
        Ok(Some(SocketAddr::new(mapped.ip, mapped.port)))
    }
}

/// The server side, for tests and test topologies: the Binding success response to `request`,
/// reporting `mapped`. `None` if `request` is not a Binding request.
pub fn binding_response(request: &[u8], mapped: SocketAddr) -> Option<Vec<u8>> {
    let mut incoming = Message::new();
    incoming.unmarshal_binary(request).ok()?;
    if incoming.typ != BINDING_REQUEST {
        return None;
    }
    let mut reply = Message::new();
    let setters: [Box<dyn Setter>; 3] = [
        Box::new(incoming.transaction_id),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: mapped.ip(),
            port: mapped.port(),
        }),
    ];
    reply.build(&setters).ok()?;
    Some(reply.raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_response_round_trip() {
        let request = BindingRequest::new().expect("request");
        assert_eq!(
            request.bytes.len(),
            20,
            "a bare Binding request is a 20-byte header"
        );
        let mapped: SocketAddr = "203.0.113.5:61000".parse().expect("addr");
        let response = binding_response(&request.bytes, mapped).expect("a request");
        assert_eq!(request.parse_response(&response), Ok(Some(mapped)));
        let other = BindingRequest::new().expect("request");
        assert_eq!(
            other.parse_response(&response),
            Ok(None),
            "another transaction"
        );
        assert_eq!(request.parse_response(b"garbage"), Ok(None));
        assert_eq!(
            binding_response(&response, mapped),
            None,
            "a response is not a request"
        );
    }
}
