//! The harness of the end-to-end tests: real processes on loopback ports,
//! each owned by one test and killed when it ends.
//!
//! | module | provides |
//! | --- | --- |
//! | [`ports`] | loopback addresses and free ports |
//! | [`process`] | child processes killed on drop, with their logs |
//! | [`redis`] | a redis-server that can be stopped and restarted |
//! | [`redis_sentinel`] | a Redis Sentinel group whose master can be killed |
//! | [`redis_cluster`] | a three-master Redis Cluster |
//! | [`fixtures`] | the Node.js OpenID provider and dashboard |
//! | [`portcullis`] | the binary under test and its configuration file |
//! | [`stack`] | all of the above for one test |
//! | [`browser`] | a cookie jar and the login walk through the provider's forms |
//! | [`echo`] | the dashboard's echo of the request it received |
//! | [`raw_http`] | requests with header names spelled exactly |
//! | [`scim`] | a stack with a recording dashboard, a SCIM client, raw request targets |
//! | [`tls`] | a throwaway CA and server certificates, made with `openssl` |

pub mod browser;
pub mod echo;
pub mod fixtures;
pub mod portcullis;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod raw_http;
pub mod redis;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod scim;
pub mod stack;
pub mod tls;

pub use browser::{redirect_target, set_cookies_named, Browser};
pub use echo::Echo;
pub use portcullis::{BINDING_COOKIE, SESSION_COOKIE};
pub use stack::{SessionStore, Stack, StackOptions};
