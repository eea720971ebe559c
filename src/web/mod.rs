//! HTTP building blocks shared by the login flow and the proxy: cookies and
//! local responses.

pub mod cookies;
pub mod response;

pub use response::LocalResponse;
