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
//! Pure modules (no I/O): `model`, `validate`, `translate`, `render`, `snapshot`. Effects live at
//! the edges: `source`, `nginx`, `metrics`, `controller`. `quarantine` and `sync` drive nginx
//! through the [`nginx::Apply`] trait so they are tested with a fake.
//!
//! Where issue 7 plugs in: TLS = `Server.tls` in the model + Secrets (already in the snapshot,
//! `kubernetes.io/tls` only) + an https `listen` in render; annotations = the
//! `KNOWN_ANNOTATIONS` list in `translate/ingress.rs`, each with a grammar in `validate.rs`;
//! status/leader election = a new `status.rs` fed by the same Ingress store; metrics = more
//! fields in `metrics::Metrics`.

pub mod args;
pub mod controller;
pub mod metrics;
pub mod model;
pub mod nginx;
pub mod quarantine;
pub mod render;
pub mod snapshot;
pub mod source;
pub mod supervisor;
pub mod sync;
pub mod translate;
pub mod validate;
