//! berth-ingress: Services and Ingresses become one validated, atomically swapped, gracefully
//! reloaded nginx config.
//!
//! ```text
//!  source/kube.rs (reflectors) ─┐                     ┌─ validate.rs (grammars; the injection boundary)
//!  source/files.rs (notify)   ──┼─ Snapshot ── translate/ ──► Model ── render.rs ──► nginx.conf text
//!        │ change counter       │ (snapshot.rs)  services.rs, ingress.rs,            │
//!        ▼                      │                backend.rs, selector.rs             ▼
//!  sync.rs: coalesce (100 ms quiet / 1 s max) ─► hash unchanged? skip ─► nginx.rs: write temp,
//!           one pass at a time                                          `nginx -t`, rename, SIGHUP
//!                                                   refused? ─► quarantine.rs: bisect the objects,
//!                                                               drop + report them, apply the rest
//!  metrics.rs: /metrics /healthz /readyz        controller.rs: wiring for run / render / init
//! ```
//!
//! Pure modules (no I/O): `model`, `validate`, `translate`, `render` (+ `hash_size`), `snapshot`. Effects live at
//! the edges: `source`, `nginx`, `metrics`, `controller`. `quarantine` and `sync` drive nginx
//! through the [`nginx::Apply`] trait so they are tested with a fake.
//!
//! TLS: `tls.rs` validates `kubernetes.io/tls` Secrets into model `Certificate`s,
//! `certfiles.rs` writes them 0600 under `PREFIX/tls`, render adds the https listeners;
//! `translate/annotations.rs` parses the `berth.dev/` annotations; `status.rs` elects a leader
//! (Lease) and writes Ingress status, `status_gateway.rs` the Gateway API statuses.

#[cfg(test)]
mod alloc_count;
pub mod args;
pub mod certfiles;
pub mod check;
pub mod controller;
pub mod gateway;
pub mod hash_size;
pub mod htpasswd;
pub mod htpasswd_files;
pub mod live;
pub mod metrics;
pub mod model;
pub mod nginx;
pub mod private_files;
pub mod quarantine;
pub mod render;
pub mod render_affinity;
pub mod render_auth;
pub mod render_canary;
pub mod render_cors;
pub mod render_errors;
pub mod render_gateway;
pub mod render_limits;
pub mod render_redirects;
pub mod serving;
pub mod snapshot;
pub mod source;
pub mod status;
pub mod status_gateway;
pub mod supervisor;
pub mod sync;
pub mod tls;
pub mod translate;
pub mod validate;
