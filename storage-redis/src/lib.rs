//! The i'mport access token on Redis, shared by every instance of a
//! merchant's server.
//!
//! # Why
//! Every i'mport call needs an access token from `/users/getToken`. With the
//! default in-memory cache each server instance fetches its own, and a
//! deploy or autoscale event makes every instance ask at once.
//! [`RedisTokenCache`] keeps one token per i'mport account for the whole
//! cluster: one instance fetches it, the others read it.
//!
//! # Setting it up
//! Give every instance the same Redis and the same [`key_prefix`]; give each
//! instance its own cache (one per process, shared by all its refunds):
//!
//! ```no_run
//! use std::sync::Arc;
//! use refund_core::{IamportClient, IamportConfig, IamportCredentials};
//! use storage_redis::RedisTokenCache;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let tokens = RedisTokenCache::connect("redis://127.0.0.1:6379")
//!     .await?
//!     .key_prefix("shop-a");
//! let credentials = IamportCredentials::new("imp_key", "imp_secret");
//! let config = IamportConfig::new(IamportConfig::PRODUCTION_URL, credentials);
//! let gateway = IamportClient::with_token_cache(config, Arc::new(tokens))?;
//! # let _ = gateway; Ok(()) }
//! ```
//!
//! An application that already has a [`redis::aio::ConnectionManager`] passes
//! it to [`RedisTokenCache::new`] instead.
//!
//! # What is stored
//! Under `{prefix}:iamport:token:{imp_key}`, a hash with the `token` and its
//! `use_until_ms`, so every instance stops using it at the same moment. Its
//! Redis TTL ends at that moment too (`use_until_ms` already leaves the
//! client's safety margin before i'mport's expiry), computed from the
//! remaining lifetime rather than an absolute time, so the Redis server's
//! clock does not matter. Keys of several i'mport accounts never collide
//! (the key holds the `imp_key`), and several applications can share one
//! Redis under different prefixes. Every key carries a TTL: nothing is left
//! behind.
//!
//! The token is a credential and sits in Redis in clear text: use a Redis
//! that only your servers reach, with a password or ACL user in the URL.
//! This crate never logs it.
//!
//! # One refresh at a time, cluster-wide
//! When the token is missing or expiring:
//! 1. inside one process, callers queue behind one of them, so a busy
//!    instance puts one poller on Redis, not one per refund;
//! 2. that caller tries `SET {prefix}:lock:{key} <random owner> NX PX
//!    <lock_ttl>`. The winner looks for the token once more (the previous
//!    holder may have stored it and released the lock just before), fetches
//!    from i'mport only if it is still missing, stores it, and deletes the
//!    lock only if it still owns it (a Lua compare-and-delete: after a very
//!    slow fetch the lock may already belong to someone else);
//! 3. the others poll (10 ms, doubling up to 100 ms) until the token
//!    appears. If the winner dies, its lock expires after `lock_ttl` and the
//!    next poller takes over; if nothing appears within `wait_budget`, the
//!    caller fetches a token itself.
//!
//! After a `401`, the client calls [`TokenCache::invalidate`] with the token
//! that failed. It deletes the stored token only if it is still that token
//! (another Lua compare-and-delete), so a fresh token that another instance
//! stored meanwhile survives a late invalidation.
//!
//! # When Redis is down or slow
//! Refunds never fail because of the cache. Every Redis call is bounded by
//! [`call_timeout`] (500 ms by default). After a failure or timeout the
//! instance logs a warning (never with the token), serves tokens from an
//! in-process cache (fetching one directly from i'mport when needed, still
//! one at a time per key) and leaves Redis alone for a second before trying
//! again. [`RedisTokenCache::connect`] does not fail when Redis is
//! unreachable either: the server starts and connects later. The connection
//! manager reconnects by itself after Redis comes back.
//!
//! # Tuning
//! - [`lock_ttl`] (20 s): longer than the slowest token fetch the i'mport
//!   client allows (3 s connect + 15 s with its defaults; keep it above your
//!   own timeouts); also how long the others wait when the fetching
//!   instance dies.
//! - [`wait_budget`] (21 s): how long a caller waits for another instance's
//!   fetch before fetching itself; keep it above `lock_ttl`.
//! - [`call_timeout`] (500 ms): Redis on the same network answers in about a
//!   millisecond; this only bounds how long an outage can delay a refund.
//!
//! # TLS
//! This crate builds the `redis` client without TLS. A `rediss://` URL needs
//! the application to enable one of the `redis` crate's TLS features (Cargo
//! unifies them).
//!
//! [`key_prefix`]: RedisTokenCache::key_prefix
//! [`lock_ttl`]: RedisTokenCache::lock_ttl
//! [`wait_budget`]: RedisTokenCache::wait_budget
//! [`call_timeout`]: RedisTokenCache::call_timeout
//! [`TokenCache::invalidate`]: refund_core::TokenCache::invalidate

#![warn(missing_docs, unreachable_pub)]

mod commands;
mod connection;
mod token_cache;

pub use token_cache::RedisTokenCache;
