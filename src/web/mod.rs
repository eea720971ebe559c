//! HTTP building blocks shared by the login flow and the proxy: cookies,
//! path normalisation and local responses.

pub mod cookies;
pub mod path;
pub mod response;

pub use response::LocalResponse;
