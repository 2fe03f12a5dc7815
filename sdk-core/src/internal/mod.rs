//! The machinery under the public API: the request pipeline, the transport, the internal error
//! tier and redaction.

pub(crate) mod digest;
pub(crate) mod error;
pub(crate) mod pipeline;
pub(crate) mod redact;
pub(crate) mod transport;
